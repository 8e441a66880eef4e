"""A quota a customer understands (issue 14), on the live drive.

The plan counts current files only: a delete frees it at once and an overwrite
is credited with the old size, through every door. The trash and the earlier
versions live in a reserve outside the plan, trimmed oldest first, so no
sequence of customer actions (parallel ones included) takes the space's disk
use past quota + reserve. The status file is for Windows' redirector only, so
rclone syncs cleanly; a LOCK's empty file never outlives a refused write or
its lock; and every 507 states the real figures.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from web_drive_helpers import WebDrive
from windows_helpers import LOCK_BODY, lock, propfind, windows_session

from spaces.access.statusfile import STATUS_FILE_NAME

#: Counters and their migration live in SQL: every test runs on SQLite and PostgreSQL.
pytestmark = pytest.mark.db

KIB, MIB = 1024, 2**20

TIERS = """
[tiers.T20M]
quota = "20M"
max_users = 5
cfdi_years = 1

[tiers.T1M]
quota = "1M"
max_users = 5
cfdi_years = 1
reserve = "512K"
"""


def open_space(make_server, tier: str = "T20M", extra: str = ""):
    srv = make_server(TIERS + extra).start()
    srv.create_space("acme", tier)
    srv.add_user("acme", "ana", "secreto-ana-1", role="admin")
    s = requests.Session()
    s.auth = ("ana", "secreto-ana-1")
    return srv, s


def show(srv) -> dict:
    return srv.show("acme")


def usage(srv) -> tuple[int, int]:
    d = show(srv)
    return int(d["used_bytes"]), int(d["used_files"])


def held(srv) -> tuple[int, int]:
    d = show(srv)
    return int(d["reserve_used_bytes"]), int(d["reserve_used_files"])


def disk_use(srv) -> int:
    """Bytes of regular files the space has on disk: files, uploads in flight,
    trash and versions, each inode once (a version is first a hard link to the
    file it was, for the instant before the file is replaced)."""
    base = srv.data / "spaces" / "acme"
    seen: dict[tuple[int, int], int] = {}
    for area in ("files", "tmp", "trash", "versions"):
        for dirpath, _dirs, names in os.walk(base / area):
            for n in names:
                try:
                    st = os.lstat(os.path.join(dirpath, n))
                except FileNotFoundError:
                    continue
                seen[(st.st_dev, st.st_ino)] = st.st_size
    return sum(seen.values())


def quota_used_bytes(s: requests.Session, url: str) -> int:
    body = ('<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop>'
            "<D:quota-used-bytes/></D:prop></D:propfind>")
    (props,) = propfind(s, url, "0", body).values()
    return int(props["{DAV:}quota-used-bytes"][1].text)


def assert_counters_are_a_recount(srv) -> None:
    out = srv.cli("quota", "recount", "acme").stdout
    assert "sin diferencias" in out, out


# -- 1. the plan counts current files only ---------------------------------------------

def test_deleting_everything_brings_quota_used_bytes_to_zero(make_server):
    srv, s = open_space(make_server)
    d = lambda p: srv.dav("acme", quote(p))  # noqa: E731
    s.request("MKCOL", d("Cierre") + "/")
    s.put(d("Cierre/balanza.xlsx"), data=b"b" * 300_000)
    s.put(d("Cierre/balanza.xlsx"), data=b"c" * 200_000)  # a version of 300 000 bytes
    s.put(d("nota.txt"), data=b"n" * 1000)
    assert quota_used_bytes(s, d("")) == 201_000
    assert s.delete(d("Cierre") + "/").status_code == 204
    assert s.delete(d("nota.txt")).status_code == 204
    assert quota_used_bytes(s, d("")) == 0
    assert usage(srv) == (0, 0)
    assert held(srv) == (501_000, 4)  # all of it in the reserve, restorable
    assert_counters_are_a_recount(srv)


def test_an_office_editing_session_moves_usage_by_exactly_what_it_leaves(make_server):
    """Word's owner file (~$), its save-by-rename twice, Excel's save over the
    document: what is left is the document; usage moves by its size, exactly."""
    srv, _ = open_space(make_server)
    s = windows_session()
    d = lambda p: srv.dav("acme", quote(p))  # noqa: E731
    before = quota_used_bytes(s, d(""))
    owner = d("~$informe.docx")
    token = lock(s, owner)
    assert s.put(owner, data=b"o" * 162, headers={"If": f"({token})"}).status_code == 204
    assert s.put(d("informe.docx"), data=b"v1" * 20_000).status_code == 201
    for n, body in ((1, b"v2" * 30_000), (3, b"v3" * 25_000)):
        assert s.put(d(f"~WRL{n:04}.tmp"), data=body).status_code == 201
        assert s.request("MOVE", d("informe.docx"),
                         headers={"Destination": d(f"~WRL{n + 1:04}.tmp")}).status_code == 201
        assert s.request("MOVE", d(f"~WRL{n:04}.tmp"),
                         headers={"Destination": d("informe.docx")}).status_code == 201
        assert s.delete(d(f"~WRL{n + 1:04}.tmp")).status_code == 204
    assert s.put(d("3A2B1C00"), data=b"x" * 58_011).status_code == 201
    r = s.request("MOVE", d("3A2B1C00"),
                  headers={"Destination": d("informe.docx"), "Overwrite": "T"})
    assert r.status_code == 204
    assert s.request("UNLOCK", owner, headers={"Lock-Token": token}).status_code == 204
    assert s.delete(owner).status_code == 204
    left = sum(p.stat().st_size for p in srv.files_root("acme").rglob("*") if p.is_file())
    assert left == 58_011
    assert quota_used_bytes(s, d("")) - before == left
    assert_counters_are_a_recount(srv)


def _set_up_seven_mib_free(srv, s) -> None:
    """A 1 MiB file.bin, and a filler so that exactly 7 MiB of the plan are free."""
    d = lambda p: srv.dav("acme", quote(p))  # noqa: E731
    for name in ("file.bin", "relleno.bin"):
        s.delete(d(name))
    assert s.put(d("file.bin"), data=b"1" * MIB).status_code == 201
    used, _ = usage(srv)
    quota_bytes = int(show(srv)["quota_bytes"])
    filler = quota_bytes - used - 7 * MIB
    assert s.put(d("relleno.bin"), data=b"f" * filler).status_code == 201
    assert int(show(srv)["available_bytes"]) == 7 * MIB


@pytest.mark.parametrize("door", ["put-length", "put-chunked", "copy", "move", "web"])
def test_seven_and_a_half_mib_over_one_mib_with_seven_free_fits_through_every_door(
        make_server, door):
    srv, s = open_space(make_server, extra="[server]\nblock_size = 65536\n"
                        if door == "put-chunked" else "")
    d = lambda p: srv.dav("acme", quote(p))  # noqa: E731
    new = os.urandom(7 * MIB + MIB // 2)
    if door in ("copy", "move"):
        # The source lives in the space: make room for it first.
        assert s.put(d("origen.bin"), data=new).status_code == 201
    _set_up_seven_mib_free(srv, s)
    if door == "put-length":
        r = s.put(d("file.bin"), data=new)
    elif door == "put-chunked":
        r = s.put(d("file.bin"), data=(new[i:i + 300_000] for i in range(0, len(new), 300_000)))
    elif door == "web":
        web = WebDrive(srv, "acme", "ana", "secreto-ana-1")
        r = web.upload("/", "file.bin", new)
    else:
        r = s.request(door.upper(), d("origen.bin"),
                      headers={"Destination": d("file.bin"), "Overwrite": "T"})
    assert r.status_code in (200, 204), (r.status_code, r.text)
    assert s.get(d("file.bin")).content == new
    quota_bytes = int(show(srv)["quota_bytes"])
    used, _ = usage(srv)
    assert used <= quota_bytes
    assert held(srv)[0] >= MIB  # the old 1 MiB, kept as a version in the reserve
    assert_counters_are_a_recount(srv)


# -- 2. the reserve ----------------------------------------------------------------------

def test_the_reserve_erases_the_oldest_versions_then_the_oldest_trash_and_never_refuses(
        make_server):
    srv, s = open_space(make_server, "T1M")  # 1 MiB plan, 512 KiB reserve
    d = lambda p: srv.dav("acme", quote(p))  # noqa: E731
    assert show(srv)["reserve_bytes"] == 512 * KIB
    s.put(d("viejo.txt"), data=b"1" * (200 * KIB))
    s.put(d("viejo.txt"), data=b"2" * (100 * KIB))  # version: 200 KiB
    s.put(d("a.bin"), data=b"a" * (150 * KIB))
    s.delete(d("a.bin"))                              # trash: 150 KiB
    s.put(d("b.bin"), data=b"b" * (120 * KIB))
    s.delete(d("b.bin"))                              # trash: 120 KiB
    assert held(srv) == (470 * KIB, 3)
    # 100 KiB more do not fit in the 512 KiB reserve: the version goes first.
    s.put(d("c.bin"), data=b"c" * (100 * KIB))
    assert s.delete(d("c.bin")).status_code == 204
    trash = json.loads(srv.cli("trash", "list", "acme", "--json").stdout)
    assert sorted(i["path"] for i in trash) == ["/a.bin", "/b.bin", "/c.bin"]
    assert json.loads(srv.cli("versions", "list", "acme", "/viejo.txt", "--json").stdout) == []
    assert held(srv) == (370 * KIB, 3)
    # 300 KiB more: the oldest trash items (a.bin, then b.bin) make room.
    s.put(d("d.bin"), data=b"d" * (300 * KIB))
    assert s.delete(d("d.bin")).status_code == 204
    trash = json.loads(srv.cli("trash", "list", "acme", "--json").stdout)
    assert sorted(i["path"] for i in trash) == ["/c.bin", "/d.bin"]
    assert held(srv) == (400 * KIB, 2)
    log = json.loads(srv.cli("audit", "list", "--space", "acme", "--json").stdout)
    purged = [r["ruta"] for r in reversed(log) if r["accion"] in ("trash_purge",
                                                                  "version_purge")]
    assert purged == ["/viejo.txt", "/a.bin", "/b.bin"]
    assert_counters_are_a_recount(srv)


def test_a_smaller_plan_trims_the_trash_and_versions_to_its_reserve_at_once(make_server):
    """`resguardo space tier` to a plan with a smaller reserve erases the oldest
    versions, then the oldest trash, until what is held fits: disk use stays
    within quota + reserve without waiting for the next delete."""
    srv, s = open_space(make_server)  # T20M: 256 MiB reserve
    d = lambda p: srv.dav("acme", quote(p))  # noqa: E731
    s.put(d("viejo.txt"), data=b"1" * (300 * KIB))
    s.put(d("viejo.txt"), data=b"2" * 10)             # version: 300 KiB
    s.put(d("a.bin"), data=b"a" * (200 * KIB))
    s.delete(d("a.bin"))                              # trash: 200 KiB
    s.put(d("b.bin"), data=b"b" * (150 * KIB))
    s.delete(d("b.bin"))                              # trash: 150 KiB
    assert held(srv) == (650 * KIB, 3)
    srv.cli("space", "tier", "acme", "T1M")           # 512 KiB reserve
    assert show(srv)["reserve_bytes"] == 512 * KIB
    assert held(srv) == (350 * KIB, 2)
    assert json.loads(srv.cli("versions", "list", "acme", "/viejo.txt", "--json").stdout) == []
    trash = json.loads(srv.cli("trash", "list", "acme", "--json").stdout)
    assert sorted(i["path"] for i in trash) == ["/a.bin", "/b.bin"]
    assert disk_use(srv) <= 1 * MIB + 512 * KIB
    log = json.loads(srv.cli("audit", "list", "--space", "acme", "--json").stdout)
    assert [r["ruta"] for r in log if r["accion"] == "version_purge"] == ["/viejo.txt"]
    srv.cli("space", "tier", "acme", "T1M")           # again: nothing more to trim
    assert held(srv) == (350 * KIB, 2)
    assert_counters_are_a_recount(srv)


def test_what_is_larger_than_the_whole_reserve_is_deleted_for_good(make_server):
    srv, s = open_space(make_server, "T1M")
    d = lambda p: srv.dav("acme", quote(p))  # noqa: E731
    s.put(d("chico.txt"), data=b"c" * 1000)
    s.delete(d("chico.txt"))
    assert s.put(d("grande.bin"), data=b"g" * (600 * KIB)).status_code == 201
    assert s.delete(d("grande.bin")).status_code == 204
    assert usage(srv) == (0, 0)
    assert held(srv) == (1000, 1)  # the small item stays; nothing else was erased for it
    assert s.put(d("grande.bin"), data=b"g" * (600 * KIB)).status_code == 201
    assert s.put(d("grande.bin"), data=b"h" * 10).status_code == 204  # not kept either
    assert held(srv) == (1000, 1)
    assert disk_use(srv) == 1010
    assert_counters_are_a_recount(srv)


def test_fifty_rounds_of_filling_and_deleting_never_pass_quota_plus_reserve(make_server):
    """Three clients at once fill the space, overwrite and delete, 50 rounds,
    while a watcher samples the disk all along. The spaces live on a tmpfs of
    their own, so a sample is the kernel's one figure for the whole disk
    (files, uploads in flight, trash and versions; every size here is whole
    pages). Disk use never passes quota + reserve, no write fails for the
    reserve, and the counters equal a recount."""
    srv = make_server(TIERS)
    spaces_dir = srv.data / "spaces"
    spaces_dir.mkdir(parents=True)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(spaces_dir)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"this machine forbids mounting a small tmpfs: {p.stderr.strip()}")
    try:
        srv.start()
        srv.create_space("acme", "T1M")
        srv.add_user("acme", "ana", "secreto-ana-1", role="admin")
        _fill_and_delete_in_rounds(srv, spaces_dir)
    finally:
        srv.stop()
        subprocess.run(["umount", "-l", str(spaces_dir)], check=False)


def _disk_used(path: Path) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def _fill_and_delete_in_rounds(srv, spaces_dir: Path) -> None:
    limit = 1 * MIB + 512 * KIB
    peaks: list[int] = []
    errors: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peaks.append(_disk_used(spaces_dir))
            time.sleep(0.002)

    def client(n: int) -> None:
        s = requests.Session()
        s.auth = ("ana", "secreto-ana-1")
        for r in range(50):
            names = [f"c{n}-{i}.bin" for i in range(4)]
            for i, name in enumerate(names):
                size = (60 + 20 * ((r + i + n) % 5)) * KIB
                got = s.put(srv.dav("acme", name), data=bytes([65 + n]) * size).status_code
                if got not in (201, 204, 507):
                    errors.append(f"PUT {name}: {got}")
            s.put(srv.dav("acme", names[0]), data=b"v" * (32 * KIB))  # a version
            for name in names:
                got = s.delete(srv.dav("acme", name)).status_code
                if got not in (204, 404):
                    errors.append(f"DELETE {name}: {got}")

    watcher = threading.Thread(target=watch)
    watcher.start()
    clients = [threading.Thread(target=client, args=(n,)) for n in range(3)]
    for t in clients:
        t.start()
    for t in clients:
        t.join(600)
    stop.set()
    watcher.join(10)
    assert errors == []
    assert peaks and max(peaks) <= limit, max(peaks)
    assert usage(srv) == (0, 0)
    assert held(srv)[0] <= 512 * KIB
    assert _disk_used(spaces_dir) == held(srv)[0]
    assert_counters_are_a_recount(srv)


# -- 4. the status file is Windows' alone -----------------------------------------------

def test_only_windows_sees_the_status_file_and_it_explains_the_reserve(make_server):
    srv, s = open_space(make_server)
    win = windows_session()
    status_url = srv.dav("acme", quote(STATUS_FILE_NAME))
    s.put(srv.dav("acme", "a.txt"), data=b"a" * 100)
    s.delete(srv.dav("acme", "a.txt"))
    names = [h.rstrip("/").rsplit("/", 1)[-1] for h in propfind(win, srv.dav("acme"))]
    assert quote(STATUS_FILE_NAME) in names
    text = win.get(status_url).content.decode("utf-8")
    assert "Papelera y versiones: 100 bytes de 256 MB de reserva; lo más antiguo se elimina " \
           "solo." in text
    assert "reserva aparte, fuera de su plan" in text
    assert win.delete(status_url).status_code == 403
    for client in (s, requests.Session()):
        client.auth = ("ana", "secreto-ana-1")
        client.headers["User-Agent"] = "rclone/v1.60.1"
        names = [h.rstrip("/").rsplit("/", 1)[-1] for h in propfind(client, srv.dav("acme"))]
        assert quote(STATUS_FILE_NAME) not in names
        assert client.get(status_url).status_code == 404
        # The name stays reserved: nobody writes a file Windows could not see.
        assert client.put(status_url, data=b"x").status_code == 403


RCLONE = shutil.which("rclone")


@pytest.mark.skipif(RCLONE is None, reason="rclone is not installed (scripts/test.sh installs it)")
def test_rclone_sync_to_the_root_exits_0_twice_and_check_is_clean(make_server, tmp_path):
    srv, _ = open_space(make_server)
    tree = tmp_path / "arbol"
    (tree / "Clientes" / "Año 2025").mkdir(parents=True)
    (tree / "Clientes" / "Año 2025" / "balanza.xlsx").write_bytes(os.urandom(70_000))
    (tree / "Clientes" / "lista.txt").write_text("uno\ndos\n", encoding="utf-8")
    (tree / "léeme.txt").write_text("hola", encoding="utf-8")
    obscured = subprocess.run([RCLONE, "obscure", "secreto-ana-1"], capture_output=True,
                              text=True, check=True).stdout.strip()
    env = {**os.environ, "RCLONE_CONFIG": str(tmp_path / "rclone.conf"),
           "RCLONE_CONFIG_RG_TYPE": "webdav", "RCLONE_CONFIG_RG_URL": srv.dav("acme"),
           "RCLONE_CONFIG_RG_VENDOR": "other", "RCLONE_CONFIG_RG_USER": "ana",
           "RCLONE_CONFIG_RG_PASS": obscured}

    def rclone(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([RCLONE, *args, "--retries", "1", "--low-level-retries", "1"],
                              capture_output=True, text=True, env=env, timeout=120)

    # Something on the drive that the sync must delete (a folder too).
    s = requests.Session()
    s.auth = ("ana", "secreto-ana-1")
    s.request("MKCOL", srv.dav("acme", "viejo/"))
    s.put(srv.dav("acme", "viejo/x.txt"), data=b"x")
    for _ in range(2):
        r = rclone("sync", str(tree), "RG:")
        assert r.returncode == 0, r.stderr
    r = rclone("check", str(tree), "RG:")
    assert r.returncode == 0, r.stderr
    assert "0 differences found" in r.stderr
    assert STATUS_FILE_NAME not in r.stderr
    listing = rclone("lsf", "-R", "RG:").stdout.split()
    assert "viejo/" not in listing and "léeme.txt" in listing
    assert_counters_are_a_recount(srv)


# -- 5. a LOCK's empty file never outlives its lock without a write --------------------

def _names(s: requests.Session, url: str) -> set[str]:
    from urllib.parse import unquote, urlsplit

    return {unquote(urlsplit(h).path).rstrip("/").rsplit("/", 1)[1]
            for h in propfind(s, url, "1")}


def test_a_davfs2_copy_over_quota_leaves_no_file_behind(make_server):
    """davfs2 copying a file larger than the free room: LOCK (creates an empty
    file), PUT → 507 (four times), UNLOCK. Nothing stays, usage is unchanged."""
    srv, s = open_space(make_server, "T1M")
    s.headers["User-Agent"] = "davfs2/1.7.0 neon/0.32.5"
    url = srv.dav("acme", "copia.bin")
    before = usage(srv)
    token = lock(s, url)
    assert (srv.files_root("acme") / "copia.bin").exists()
    for _ in range(4):
        r = s.put(url, data=b"z" * (2 * MIB), headers={"If": f"({token})"})
        assert r.status_code == 507
        assert "el archivo necesita 2 MB y el plan tiene 1 MB disponibles" in r.text, r.text
    assert s.request("UNLOCK", url, headers={"Lock-Token": token}).status_code == 204
    assert not (srv.files_root("acme") / "copia.bin").exists()
    assert "copia.bin" not in _names(s, srv.dav("acme"))
    assert usage(srv) == before
    assert_counters_are_a_recount(srv)


def test_a_lock_placeholder_goes_when_its_lock_ends_or_the_lock_fails(make_server):
    srv, s = open_space(make_server)
    d = lambda p: srv.dav("acme", quote(p))  # noqa: E731
    # UNLOCK without a write.
    token = lock(s, d("nuevo.docx"))
    assert "nuevo.docx" in _names(s, d(""))
    assert s.request("UNLOCK", d("nuevo.docx"), headers={"Lock-Token": token}).status_code == 204
    assert "nuevo.docx" not in _names(s, d(""))
    # A written one stays.
    token = lock(s, d("escrito.docx"))
    assert s.put(d("escrito.docx"), data=b"", headers={"If": f"({token})"}).status_code == 204
    assert s.request("UNLOCK", d("escrito.docx"),
                     headers={"Lock-Token": token}).status_code == 204
    assert "escrito.docx" in _names(s, d(""))
    # A LOCK refused by a colleague's lock on the folder creates nothing.
    s.request("MKCOL", d("Compartida") + "/")
    other = requests.Session()
    srv.add_user("acme", "beto", "secreto-beto-1", role="admin")  # admins lock folders
    other.auth = ("beto", "secreto-beto-1")
    folder_token = lock(other, d("Compartida") + "/")
    r = s.request("LOCK", d("Compartida/mio.docx"), data=LOCK_BODY,
                  headers={"Content-Type": 'text/xml; charset="utf-8"'})
    assert r.status_code == 423
    assert not (srv.files_root("acme") / "Compartida" / "mio.docx").exists()
    other.request("UNLOCK", d("Compartida") + "/", headers={"Lock-Token": folder_token})
    # Expiry without a write: gone once the lock has expired (a sweep on a later request).
    r = s.request("LOCK", d("expira.docx"), data=LOCK_BODY,
                  headers={"Timeout": "Second-1", "Content-Type": 'text/xml; charset="utf-8"'})
    assert r.status_code == 201
    ph = srv.files_root("acme") / "expira.docx"
    _age_placeholders(srv)
    deadline = time.monotonic() + 30
    while ph.exists() and time.monotonic() < deadline:
        _names(s, d(""))
        time.sleep(0.5)
    assert not ph.exists()
    assert usage(srv) == (0, 2)  # escrito.docx and Compartida
    assert_counters_are_a_recount(srv)


def test_an_expired_lock_placeholder_goes_even_when_no_request_comes(make_server):
    """Office or davfs2 LOCKs a new name, crashes, and nobody uses the drive
    afterwards (a night, a weekend): the empty file must not wait for the next
    request to go. The drive sweeps on its own clock."""
    srv, s = open_space(make_server)
    r = s.request("LOCK", srv.dav("acme", "huerfano.docx"), data=LOCK_BODY,
                  headers={"Timeout": "Second-1", "Content-Type": 'text/xml; charset="utf-8"'})
    assert r.status_code == 201
    ph = srv.files_root("acme") / "huerfano.docx"
    assert ph.exists()
    _age_placeholders(srv)
    deadline = time.monotonic() + 30  # no request to the server from here on
    while ph.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not ph.exists()
    assert usage(srv) == (0, 0)
    assert_counters_are_a_recount(srv)


def _age_placeholders(srv) -> None:
    """Make the placeholders older than the sweep's grace (the clock of the
    test, not a sleep of 30 s): their created_at goes back a minute."""
    import sqlalchemy as sa

    engine = sa.create_engine(srv.db_url)
    with engine.begin() as c:
        c.execute(sa.text("UPDATE lock_placeholders SET created_at = :t"),
                  {"t": "2000-01-01 00:00:00"})
    engine.dispose()


# -- 6. every 507 states the real figures -----------------------------------------------

def test_a_chunked_upload_refused_at_the_quota_states_what_is_really_free(make_server):
    srv, s = open_space(make_server, "T1M")
    s.put(srv.dav("acme", "a.bin"), data=b"a" * (300 * KIB))
    body = (b"z" * (64 * KIB) for _ in range(20))  # 1280 KiB, no length announced
    r = s.put(srv.dav("acme", "grande.bin"), data=body)
    assert r.status_code == 507
    m = re.search(r"necesita al menos ([\d,]+ [KM]B) y el plan tiene ([\d,]+ KB) disponibles",
                  r.text)
    assert m, r.text
    assert m.group(2) == "724 KB"  # 1024 - 300: what is free once the upload is gone
    assert usage(srv) == (300 * KIB, 1)


def test_the_portal_shows_the_reserve_apart_from_the_plan(make_server):
    srv, s = open_space(make_server)
    s.put(srv.dav("acme", "a.txt"), data=b"a" * 2048)
    s.delete(srv.dav("acme", "a.txt"))
    web = WebDrive(srv, "acme", "ana", "secreto-ana-1")
    page = web.browse("/").text
    assert "0 bytes de 20 MB usados" in page
    assert "Papelera y versiones: 2 KB de 256 MB de reserva" in page
    assert "reserva aparte, fuera de su plan" in page



# -- 3. the migration of existing spaces --------------------------------------------------

def _fresh_pg_database(request) -> str:
    """An empty PostgreSQL database (dropped afterwards)."""
    from conftest import _pg_create_database, _pg_drop_database

    url, name = _pg_create_database()
    request.addfinalizer(lambda: _pg_drop_database(name))
    return url


@pytest.mark.parametrize("with_settings", [True, False], ids=["recounted", "moved"])
def test_migration_moves_trash_and_versions_out_of_the_plan_of_existing_spaces(
        database, with_settings, tmp_path, request):
    """A space from before the reserve (schema 0011) whose usage counted its
    trash and versions: migrated, its plan counts its files only and its
    reserve holds the rest (recounted from disk when the migration has the
    installation's settings, else moved by the rows), with its tier's reserve."""
    import sqlalchemy as sa

    from spaces.core.db import migrate
    from spaces.core.settings import Settings

    url = (f"sqlite:///{tmp_path / 'old.db'}" if database == "sqlite"
           else _fresh_pg_database(request))
    settings = Settings(data_dir=str(tmp_path / "data"))
    settings.database.url = url
    migrate(url, "0011")
    base = settings.data_path / "spaces" / "viejo"
    for area in ("files", "tmp", "trash", "versions"):
        (base / area).mkdir(parents=True)
    (base / "files" / "a.txt").write_bytes(b"a" * 1000)
    (base / "trash" / "t1").write_bytes(b"t" * 300)
    (base / "versions" / "v1").write_bytes(b"v" * 200)
    engine = sa.create_engine(url)
    with engine.begin() as c:
        sid = c.execute(sa.text(
            "INSERT INTO spaces (name, tier, quota_bytes, max_users, used_bytes, used_files, "
            "status, created_at, share_links_enabled) VALUES ('viejo', '4G', :q, 10, 1500, 3, "
            "'active', :now, false) RETURNING id"), {"q": 4 * 2**30, "now": "2026-01-01"}
        ).scalar_one()
        c.execute(sa.text(
            "INSERT INTO trash_items (space_id, token, path, is_dir, size, files, trashed_at) "
            "VALUES (:sid, 't1', '/b.txt', false, 300, 1, :now)"),
            {"sid": sid, "now": "2026-01-01"})
        c.execute(sa.text(
            "INSERT INTO file_versions (space_id, token, path, size, mtime, created_at) "
            "VALUES (:sid, 'v1', '/a.txt', 200, 0, :now)"), {"sid": sid, "now": "2026-01-01"})
    migrate(url, "head", settings if with_settings else None)
    with engine.connect() as c:
        row = c.execute(sa.text(
            "SELECT used_bytes, used_files, held_bytes, held_files, reserve_bytes FROM spaces "
            "WHERE id = :sid"), {"sid": sid}).one()
    engine.dispose()
    assert tuple(row) == (1000, 1, 500, 2, 2**30)  # 4G: 25 % of the quota
