"""Trash bin and file versions on the live drive: a delete goes to the space's
trash and can be brought back; the trash and the versions live in the space's reserve,
outside the plan, and their counters always equal a recount, under random and
concurrent sequences; a protected CFDI never reaches either; file events reach
the audit log. Versions themselves: test_versions.py."""

from __future__ import annotations

import json
import random
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from test_cfdi import one_cfdi
from trash_helpers import (
    KIB,
    assert_usage_is_a_recount,
    held,
    listed,
    on_disk,
    open_space,
    safety_net,
    trash_list,
    usage,
    versions_of,
)
from windows_helpers import propfind

# Its outcome depends on the database: runs on SQLite and on PostgreSQL.
pytestmark = pytest.mark.db

# -- trash ---------------------------------------------------------------------------

def test_delete_moves_a_file_to_the_trash_and_restore_puts_it_back(make_server):
    srv, s = open_space(make_server)
    d = lambda p: srv.dav("acme", quote(p))  # noqa: E731
    assert s.request("MKCOL", d("Clientes") + "/").status_code == 201
    assert s.put(d("Clientes/balanza.xlsx"), data=b"b" * 5000).status_code == 201
    before = usage(srv)

    assert s.delete(d("Clientes/balanza.xlsx")).status_code == 204
    assert s.get(d("Clientes/balanza.xlsx")).status_code == 404
    # The trash lives outside the drive (no listing shows it) and outside the plan.
    assert "trash" not in listed(s, srv.dav("acme")) | listed(s, d("Clientes") + "/")
    assert usage(srv) == (0, 1) and held(srv) == (5000, 1)
    (item,) = trash_list(srv)
    assert (item["path"], item["size"], item["files"], item["is_dir"]) == \
        ("/Clientes/balanza.xlsx", 5000, 1, False)
    assert item["trashed_by"] == "ana"
    assert_usage_is_a_recount(srv)

    out = srv.cli("trash", "restore", "acme", str(item["id"])).stdout
    assert "/Clientes/balanza.xlsx" in out
    assert s.get(d("Clientes/balanza.xlsx")).content == b"b" * 5000
    assert trash_list(srv) == []
    assert usage(srv) == before and held(srv) == (0, 0)
    assert_usage_is_a_recount(srv)


def test_restore_when_the_name_is_taken_comes_back_as_restaurado(make_server):
    srv, s = open_space(make_server)
    d = lambda p: srv.dav("acme", quote(p))  # noqa: E731
    s.put(d("nota.txt"), data=b"primera")
    s.delete(d("nota.txt"))
    s.put(d("nota.txt"), data=b"segunda")
    (item,) = trash_list(srv)
    assert "/nota (restaurado).txt" in srv.cli("trash", "restore", "acme",
                                               str(item["id"])).stdout
    assert s.get(d("nota.txt")).content == b"segunda"
    assert s.get(d("nota (restaurado).txt")).content == b"primera"
    # Both names taken: the next free one.
    s.delete(d("nota.txt"))
    s.put(d("nota.txt"), data=b"tercera")
    (item,) = trash_list(srv)
    assert "/nota (restaurado 2).txt" in srv.cli("trash", "restore", "acme",
                                                 str(item["id"])).stdout
    assert s.get(d("nota (restaurado 2).txt")).content == b"segunda"
    assert s.get(d("nota (restaurado).txt")).content == b"primera"
    assert_usage_is_a_recount(srv)


def test_a_deleted_folder_is_one_trash_item_and_comes_back_whole(make_server):
    srv, s = open_space(make_server)
    d = lambda p: srv.dav("acme", quote(p))  # noqa: E731
    s.request("MKCOL", d("Cierre 2025") + "/")
    s.request("MKCOL", d("Cierre 2025/Nómina") + "/")
    s.put(d("Cierre 2025/Nómina/recibo.pdf"), data=b"p" * 700)
    s.put(d("Cierre 2025/balanza.xlsx"), data=b"x" * 300)
    before = usage(srv)
    assert s.delete(d("Cierre 2025") + "/").status_code == 204
    (item,) = trash_list(srv)
    assert (item["path"], item["is_dir"], item["size"], item["files"]) == \
        ("/Cierre 2025", True, 1000, 4)
    assert usage(srv) == (0, 0) and held(srv) == before
    srv.cli("trash", "restore", "acme", str(item["id"]))
    assert s.get(d("Cierre 2025/Nómina/recibo.pdf")).content == b"p" * 700
    assert_usage_is_a_recount(srv)


def test_restoring_a_file_whose_folder_is_gone_recreates_the_folder(make_server):
    srv, s = open_space(make_server)
    d = lambda p: srv.dav("acme", quote(p))  # noqa: E731
    s.request("MKCOL", d("a") + "/")
    s.request("MKCOL", d("a/b") + "/")
    s.put(d("a/b/c.txt"), data=b"c" * 10)
    s.delete(d("a/b/c.txt"))
    s.delete(d("a") + "/")
    items = {i["path"]: i for i in trash_list(srv)}
    srv.cli("trash", "restore", "acme", str(items["/a/b/c.txt"]["id"]))
    assert s.get(d("a/b/c.txt")).content == b"c" * 10
    assert_usage_is_a_recount(srv)


def test_the_trash_is_outside_the_plan_and_a_write_never_fails_because_of_it(make_server):
    srv, s = open_space(make_server, tier="T100K")
    d = lambda p: srv.dav("acme", quote(p))  # noqa: E731
    assert s.put(d("a.bin"), data=b"a" * (70 * KIB)).status_code == 201
    assert s.delete(d("a.bin")).status_code == 204
    assert usage(srv) == (0, 0) and held(srv) == (70 * KIB, 1)
    # 40 KiB fit: the deleted 70 KiB are in the reserve, not in the plan, and
    # nothing had to be erased to make room.
    assert s.put(d("b.bin"), data=b"b" * (40 * KIB)).status_code == 201
    assert [i["path"] for i in trash_list(srv)] == ["/a.bin"]
    # The RFC 4331 properties report the plan: current files only.
    body = ('<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop>'
            "<D:quota-used-bytes/><D:quota-available-bytes/></D:prop></D:propfind>")
    (props,) = propfind(s, srv.dav("acme"), "0", body).values()
    assert props["{DAV:}quota-used-bytes"][1].text == str(40 * KIB)
    assert props["{DAV:}quota-available-bytes"][1].text == str(60 * KIB)
    # Restoring brings it back into the plan, only if it fits there.
    (item,) = trash_list(srv)
    r = srv.cli("trash", "restore", "acme", str(item["id"]), check=False)
    assert r.returncode != 0 and "Espacio insuficiente" in r.stderr, r.stderr
    assert "70 KB" in r.stderr and "60 KB disponibles" in r.stderr
    assert usage(srv) == (40 * KIB, 1) and held(srv) == (70 * KIB, 1)
    assert s.delete(d("b.bin")).status_code == 204
    srv.cli("trash", "restore", "acme", str(item["id"]))
    assert s.get(d("a.bin")).content == b"a" * (70 * KIB)
    assert usage(srv) == (70 * KIB, 1) and held(srv) == (40 * KIB, 1)
    assert "40960 bytes" in srv.cli("trash", "empty", "acme").stdout
    assert held(srv) == (0, 0)
    assert_usage_is_a_recount(srv)


def test_the_sweep_purges_trash_older_than_its_days_and_frees_the_space(make_server):
    srv, s = open_space(make_server, "[trash]\ndays = 30\n")
    d = lambda p: srv.dav("acme", quote(p))  # noqa: E731
    s.put(d("viejo.txt"), data=b"v" * 1000)
    s.delete(d("viejo.txt"))
    # Not yet: a sweep today (and 29 days from now) keeps it.
    srv.cli("retention", "sweep")
    assert len(trash_list(srv)) == 1
    from datetime import date, timedelta

    soon = (date.today() + timedelta(days=29)).isoformat()
    srv.cli("retention", "sweep", "--now", soon)
    assert len(trash_list(srv)) == 1
    later = (date.today() + timedelta(days=31)).isoformat()
    out = srv.cli("retention", "sweep", "--now", later).stdout
    assert "1 elementos, 1000 bytes" in out
    assert trash_list(srv) == []
    assert usage(srv) == (0, 0) and held(srv) == (0, 0)
    assert list((srv.data / "spaces" / "acme" / "trash").iterdir()) == []
    # Running it twice does nothing more.
    assert "0 elementos" in srv.cli("retention", "sweep", "--now", later).stdout
    assert_usage_is_a_recount(srv)


def test_trash_purge_older_than_zero_days_erases_everything_in_the_trash(make_server):
    srv, s = open_space(make_server)
    d = lambda p: srv.dav("acme", quote(p))  # noqa: E731
    s.put(d("uno.txt"), data=b"1" * 10)
    s.put(d("dos.txt"), data=b"2" * 20)
    s.delete(d("uno.txt"))
    assert usage(srv) == (20, 1) and held(srv) == (10, 1)
    assert "1 elementos, 10 bytes" in srv.cli("trash", "purge", "--older-than", "0").stdout
    assert usage(srv) == (20, 1) and held(srv) == (0, 0)
    assert_usage_is_a_recount(srv)


# -- CFDI ----------------------------------------------------------------------------

def test_a_protected_cfdi_never_reaches_the_trash_nor_the_versions(make_server, tmp_path):
    data, _entry = one_cfdi(tmp_path)
    srv, s = open_space(make_server)
    d = lambda p: srv.dav("acme", quote(p))  # noqa: E731
    s.request("MKCOL", d("cierre") + "/")
    s.request("MKCOL", d("cierre/xml") + "/")
    assert s.put(d("cierre/xml/f.xml"), data=data).status_code == 201
    s.put(d("cierre/xml/notas.txt"), data=b"n" * 100)
    s.put(d("cierre/balanza.xlsx"), data=b"b" * 300)
    assert s.delete(d("cierre/xml/f.xml")).status_code == 403
    assert s.put(d("cierre/xml/f.xml"), data=b"otro").status_code == 403
    s.put(d("otra.xml"), data=b"<x/>")
    r = s.request("MOVE", d("otra.xml"),
                  headers={"Destination": d("cierre/xml/f.xml"), "Overwrite": "T"})
    assert r.status_code == 403
    r = s.delete(d("cierre") + "/")
    assert r.status_code == 207
    assert s.get(d("cierre/xml/f.xml")).content == data
    (item,) = trash_list(srv)
    assert item["path"] == "/cierre" and item["size"] == 400
    assert_usage_is_a_recount(srv)
    # Emptying the trash and every sweep leave the CFDI alone.
    srv.cli("trash", "empty", "acme")
    srv.cli("trash", "purge", "--older-than", "0")
    assert s.get(d("cierre/xml/f.xml")).content == data
    assert versions_of(srv, "/cierre/xml/f.xml") == []
    assert_usage_is_a_recount(srv)
    # Restoring an emptied trash item is impossible; the rest of the folder is still there.
    assert s.get(d("cierre/balanza.xlsx")).status_code == 404


# -- accounting under arbitrary sequences --------------------------------------------

@pytest.mark.parametrize("seed", [1, 2])
def test_usage_equals_a_recount_after_random_sequences(make_server, seed):
    srv, s = open_space(make_server, "[versions]\nkeep = 2\n")
    d = lambda p: srv.dav("acme", quote(p))  # noqa: E731
    rng = random.Random(seed)
    names = ["a.txt", "b.docx", "c/x.txt", "c/y.txt", "~WRL0001.tmp", "3A2B1C00"]
    s.request("MKCOL", d("c") + "/")
    for _ in range(40):
        op = rng.choice(["put", "put", "delete", "move", "copy", "restore", "vrestore"])
        a, b = rng.choice(names), rng.choice(names)
        if op == "put":
            s.put(d(a), data=bytes([65 + rng.randrange(26)]) * rng.randrange(0, 3000))
        elif op == "delete":
            s.delete(d(a))
        elif op in ("move", "copy") and a != b:
            s.request(op.upper(), d(a), headers={"Destination": d(b),
                                                 "Overwrite": rng.choice("TF")})
        elif op == "restore":
            items = trash_list(srv)
            if items:
                srv.cli("trash", "restore", "acme", str(rng.choice(items)["id"]), check=False)
        elif op == "vrestore":
            vs = versions_of(srv, "/" + a)
            if vs:
                srv.cli("versions", "restore", "acme", str(vs[0]["id"]), check=False)
    assert_usage_is_a_recount(srv)
    for v_path in names:
        assert len(versions_of(srv, "/" + v_path)) <= 2


# -- crash recovery ------------------------------------------------------------------

def test_start_up_gives_a_trash_row_to_anything_left_without_one(make_server):
    srv, s = open_space(make_server)
    d = lambda p: srv.dav("acme", quote(p))  # noqa: E731
    s.put(d("a.txt"), data=b"a" * 50)
    s.delete(d("a.txt"))
    srv.stop()
    trash_dir: Path = srv.data / "spaces" / "acme" / "trash"
    (trash_dir / "ffff").write_bytes(b"huerfano")  # as if a crash lost its row
    (srv.data / "spaces" / "acme" / "versions" / "0000").write_bytes(b"sin fila")
    srv.start()
    paths = sorted(i["path"] for i in trash_list(srv))
    assert paths[0] == "/a.txt" and len(paths) == 3
    assert usage(srv) == on_disk(srv, "files") == (0, 0)
    assert held(srv) == safety_net(srv) == (50 + 8 + 8, 3)


# -- audit ---------------------------------------------------------------------------

def test_file_events_reach_the_audit_log_with_who_and_what(make_server):
    srv, s = open_space(make_server)
    d = lambda p: srv.dav("acme", quote(p))  # noqa: E731
    s.put(d("a.txt"), data=b"1" * 10)
    s.put(d("a.txt"), data=b"2" * 20)
    s.request("MOVE", d("a.txt"), headers={"Destination": d("b.txt")})
    s.delete(d("b.txt"))
    (item,) = trash_list(srv)
    srv.cli("trash", "restore", "acme", str(item["id"]))
    (v,) = versions_of(srv, "/b.txt")
    srv.cli("versions", "restore", "acme", str(v["id"]))
    s.delete(d("b.txt"))
    srv.cli("trash", "empty", "acme")
    rows = json.loads(srv.cli("audit", "list", "--space", "acme", "--json").stdout)
    got = [(r["accion"], r["usuario"].split(":")[0], r["ruta"], r["destino"])
           for r in reversed(rows) if r["accion"] not in ("space_created", "member_added")]
    assert got == [
        ("upload", "ana", "/a.txt", ""),
        ("overwrite", "ana", "/a.txt", ""),
        ("move", "ana", "/a.txt", "/b.txt"),
        ("delete", "ana", "/b.txt", ""),
        ("trash_restore", "cli", "/b.txt", "/b.txt"),
        ("version_restore", "cli", "/b.txt", ""),
        ("delete", "ana", "/b.txt", ""),
        ("trash_purge", "cli", "/", ""),
    ]
    dav_rows = [r for r in rows if r["usuario"] == "ana"]
    assert all(r["direccion"] == "127.0.0.1" and r["via"] == "dav" for r in dav_rows)


def test_concurrent_overwrites_and_deletes_never_pass_the_quota_and_equal_a_recount(
        make_server):
    import threading

    srv, _ = open_space(make_server, tier="T100K")
    errors: list[str] = []

    def worker(n: int) -> None:
        s = requests.Session()
        s.auth = ("ana", "secreto-ana-1")
        rng = random.Random(n)
        for _ in range(15):
            name = f"f{rng.randrange(4)}.bin"
            if rng.random() < 0.7:
                r = s.put(srv.dav("acme", name), data=b"x" * rng.randrange(1, 12 * KIB))
                ok = (201, 204, 507)
            else:
                r = s.delete(srv.dav("acme", name))
                ok = (204, 404)
            if r.status_code not in ok:
                errors.append(f"{r.request.method} {name}: {r.status_code} {r.text[:200]}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    used, _files = usage(srv)
    assert used <= 100 * KIB
    assert_usage_is_a_recount(srv)

