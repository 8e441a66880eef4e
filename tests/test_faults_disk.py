"""A full disk: a 201 means the whole body is on disk and durable; anything
else is a 507 that leaves the previous version intact, no temporary file, and
counters that equal the disk. Runs on a real small tmpfs (CI runs as root)."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.conftest import _migrated_template

KIB = 1024
MIB = 2**20


@contextmanager
def small_tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``where`` (created), unmounted at the end;
    skips the test when this machine does not let us mount one."""
    where.mkdir(parents=True, exist_ok=True)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"mounting a small tmpfs is not permitted here: {p.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def server_on(make_server, data: Path, dbfile: Path, extra: str = ""):
    """A server whose data folder is ``data`` and whose SQLite file is
    ``dbfile`` (a copy of the migrated template), wherever they are mounted."""
    shutil.copyfile(_migrated_template("sqlite"), dbfile)
    srv = make_server(extra, db_url=f"sqlite:///{dbfile}")
    srv.data = data
    srv.config.write_text(srv.config.read_text().replace(
        f'data_dir = "{srv.base / "data"}"', f'data_dir = "{data}"'))
    return srv


def _session() -> requests.Session:
    s = requests.Session()
    s.auth = ("ana", "secreto-ana-1")
    return s


def assert_counters_equal_disk(srv, space: str) -> None:
    out = srv.cli("quota", "recount", space).stdout
    assert "sin diferencias" in out, out


@pytest.mark.parametrize("sqlite_inside", [False, True], ids=["db-outside", "db-inside"])
def test_full_disk_never_acknowledges_a_short_file(make_server, tmp_path, sqlite_inside):
    """The issue's run: 5 MB files until the disk is full, then the same 64 KiB
    file again and again. Every 201/204 left exactly the bytes sent; every 507
    left the previous content; no temporary file; counters = disk = recount."""
    data = tmp_path / "data"
    dbfile = (data if sqlite_inside else tmp_path) / "resguardo.db"
    mounted = data if sqlite_inside else data / "spaces"
    with small_tmpfs(mounted, "50m"):
        # No allowance: the disk itself runs out (ENOSPC mid-write).
        srv = server_on(make_server, data, dbfile, '[storage]\nmin_free = "0"\n').start()
        try:
            srv.create_space("acme", "1G")
            srv.add_user("acme", "ana", "secreto-ana-1")
            s = _session()
            stored: dict[str, bytes] = {}
            answers = []
            for i in range(10):
                body = bytes([65 + i]) * 5_230_592
                r = s.put(srv.dav("acme", f"grande{i}.bin"), data=body)
                answers.append(r.status_code)
                assert r.status_code in (201, 507), (r.status_code, r.text)
                if r.status_code == 201:
                    stored[f"grande{i}.bin"] = body
                else:
                    assert "disco" in r.text
            for i in range(3):
                body = bytes([97 + i]) * (64 * KIB)
                r = s.put(srv.dav("acme", "libro.xlsx"), data=body)
                answers.append(r.status_code)
                assert r.status_code in (201, 204, 507), (r.status_code, r.text)
                if r.status_code != 507:
                    stored["libro.xlsx"] = body
            assert 507 in answers, answers  # the disk did fill
            for name, body in stored.items():
                got = s.get(srv.dav("acme", name)).content
                assert len(got) == len(body) and got == body, (name, len(got), len(body))
                assert (srv.files_root("acme") / name).stat().st_size == len(body)
            assert list((data / "spaces" / "acme" / "tmp").iterdir()) == []
            assert_counters_equal_disk(srv, "acme")
            assert "Traceback" not in srv.log.read_text()
        finally:
            srv.stop()


def _fill(where: Path, leave: int = 0) -> Path:
    """What another program does: write a file that takes the disk's free bytes
    (all but ``leave``). Returns the file."""
    hog = where / "hog.bin"
    with open(hog, "wb") as fh:
        chunk = b"h" * MIB
        try:
            while True:
                st = os.statvfs(where)
                room = st.f_bavail * st.f_frsize - leave
                if room <= 0:
                    break
                fh.write(chunk[:room])
                fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return hog


def test_full_disk_refuses_writes_at_min_free_and_deletes_still_free_it(make_server, tmp_path):
    """Default layout (SQLite inside data_dir): writes stop with 507 while the
    allowance is still free, /healthz and /metrics say so, and then DELETE,
    emptying the trash and quota recount all work; the disk is freed through
    the product. Even when another program eats the allowance too, DELETE
    answers (never a 500) and the counters still equal the disk."""
    data = tmp_path / "data"
    with small_tmpfs(data, "24m"):
        srv = server_on(make_server, data, data / "resguardo.db",
                        '[storage]\nmin_free = "6M"\nwarn_free = "12M"\nballast = "2M"\n'
                        '[trash]\ndays = 30\n').start()
        try:
            srv.create_space("acme", "1G")
            srv.add_user("acme", "ana", "secreto-ana-1")
            s = _session()
            answers = []
            for i in range(12):
                r = s.put(srv.dav("acme", f"f{i}.bin"), data=bytes([65 + i]) * (2 * MIB))
                answers.append(r.status_code)
                if r.status_code == 507:
                    assert "disco" in r.text, r.text
                    break
                assert r.status_code == 201, (r.status_code, r.text)
            assert answers[-1] == 507, answers
            st = os.statvfs(data)
            assert st.f_bavail * st.f_frsize >= 4 * MIB  # the allowance stayed free
            r = s.put(srv.dav("acme", "nuevo.bin"), data=iter([b"c" * MIB] * 8))  # chunked
            assert r.status_code == 507
            health = requests.get(srv.url + "/healthz").json()
            assert health["disk"] in ("low", "full"), health
            assert 4 * MIB <= health["disk_free_bytes"] < 12 * MIB, health
            assert health["status"] == "ok"  # reads and deletes still served
            metrics = requests.get(srv.url + "/metrics").text
            assert "resguardo_disk_free_bytes " in metrics
            srv.wait_for_log(r"disk (low|full): free=")

            # Recovery through the product: delete, empty the trash, recount.
            for name in ("f0.bin", "f1.bin"):
                assert s.delete(srv.dav("acme", name)).status_code == 204
            srv.cli("trash", "empty", "acme")
            assert s.put(srv.dav("acme", "despues.bin"), data=b"d" * MIB).status_code == 201
            assert_counters_equal_disk(srv, "acme")

            # Another program eats the allowance as well: 0 bytes free.
            hog = _fill(data)
            r = s.delete(srv.dav("acme", "f2.bin"))  # the ballast gives the room back
            assert r.status_code == 204, (r.status_code, r.text)
            srv.wait_for_log("ballast released")
            r = s.put(srv.dav("acme", "otro.bin"), data=b"x" * 1000)
            assert r.status_code == 507, (r.status_code, r.text)
            assert s.request("MKCOL", srv.dav("acme", "carpeta")).status_code == 507
            assert requests.get(srv.url + "/healthz").json()["disk"] == "full"
            hog.unlink()
            assert s.delete(srv.dav("acme", "f3.bin")).status_code == 204
            srv.cli("trash", "empty", "acme")
            assert_counters_equal_disk(srv, "acme")
            assert "Traceback" not in srv.log.read_text()
        finally:
            srv.stop()
