"""Trash bin and file versions on the live drive: a delete goes to the space's
trash and can be brought back, an overwrite keeps the previous content as a
version (Office's save-by-rename included); both live in the space's reserve,
outside the plan, and their counters always equal a recount; a protected CFDI
never reaches either."""

from __future__ import annotations

import json
import random
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from test_cfdi import one_cfdi
from windows_helpers import propfind

# Its outcome depends on the database: runs on SQLite and on PostgreSQL.
pytestmark = pytest.mark.db

SMALL = """
[tiers.T100K]
quota = "100K"
max_users = 3
cfdi_years = 1
"""
KIB = 1024


def open_space(make_server, config: str = "", tier: str = "4G"):
    srv = make_server(SMALL + config).start()
    srv.create_space("acme", tier)
    srv.add_user("acme", "ana", "secreto-ana-1", role="admin")
    s = requests.Session()
    s.auth = ("ana", "secreto-ana-1")
    return srv, s


def usage(srv) -> tuple[int, int]:
    """What the plan counts: the current files."""
    d = srv.show("acme")
    return int(d["used_bytes"]), int(d["used_files"])


def held(srv) -> tuple[int, int]:
    """What the reserve holds: the trash and the earlier versions."""
    d = srv.show("acme")
    return int(d["reserve_used_bytes"]), int(d["reserve_used_files"])


def on_disk(srv, area: str) -> tuple[int, int]:
    """(bytes, files and folders) under one area of the space: files, trash, versions."""
    entries = list((srv.data / "spaces" / "acme" / area).rglob("*"))
    return sum(p.stat().st_size for p in entries if p.is_file()), len(entries)


def safety_net(srv) -> tuple[int, int]:
    parts = [on_disk(srv, a) for a in ("trash", "versions")]
    return sum(b for b, _ in parts), sum(n for _, n in parts)


def assert_usage_is_a_recount(srv) -> None:
    assert usage(srv) == on_disk(srv, "files")
    assert held(srv) == safety_net(srv)
    out = srv.cli("quota", "recount", "acme").stdout
    assert "sin diferencias" in out, out


def trash_list(srv) -> list[dict]:
    return json.loads(srv.cli("trash", "list", "acme", "--json").stdout)


def versions_of(srv, path: str) -> list[dict]:
    return json.loads(srv.cli("versions", "list", "acme", path, "--json").stdout)


def listed(s, url: str) -> set[str]:
    from urllib.parse import unquote, urlsplit

    return {unquote(urlsplit(h).path).rstrip("/").rsplit("/", 1)[1]
            for h in propfind(s, url, "1")}


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


# -- versions ------------------------------------------------------------------------

def test_put_overwrite_keeps_previous_versions_up_to_the_configured_number(make_server):
    srv, s = open_space(make_server, "[versions]\nkeep = 3\n")
    d = lambda p: srv.dav("acme", quote(p))  # noqa: E731
    # Six saves of different sizes, so each version can be told from the others.
    saves = [f"contenido {i} ".encode() * (100 + i) for i in range(6)]
    for body in saves:
        assert s.put(d("libro.xlsx"), data=body).status_code in (201, 204)
    assert s.get(d("libro.xlsx")).content == saves[5]
    # Newest first: saves 4, 3 and 2 are kept; 0 and 1 were pruned.
    vs = versions_of(srv, "/libro.xlsx")
    assert [v["size"] for v in vs] == [len(saves[i]) for i in (4, 3, 2)]
    on_disk = [p.read_bytes() for p in (srv.data / "spaces" / "acme" / "versions").iterdir()]
    assert sorted(on_disk) == sorted(saves[i] for i in (4, 3, 2))
    assert usage(srv) == (len(saves[5]), 1)
    assert held(srv) == (sum(len(saves[i]) for i in (4, 3, 2)), 3)
    assert_usage_is_a_recount(srv)


def test_restoring_a_version_keeps_the_current_content_as_a_version(make_server):
    srv, s = open_space(make_server)
    d = lambda p: srv.dav("acme", quote(p))  # noqa: E731
    s.put(d("contrato.docx"), data=b"v1" * 500)
    s.put(d("contrato.docx"), data=b"v2" * 800)
    (v1,) = versions_of(srv, "/contrato.docx")
    assert usage(srv) == (1600, 1) and held(srv) == (1000, 1)
    srv.cli("versions", "restore", "acme", str(v1["id"]))
    assert s.get(d("contrato.docx")).content == b"v1" * 500
    (v2,) = versions_of(srv, "/contrato.docx")
    assert v2["size"] == 1600
    # The plan counts the restored content; the reserve the one it replaced.
    assert usage(srv) == (1000, 1) and held(srv) == (1600, 1)
    srv.cli("versions", "restore", "acme", str(v2["id"]))
    assert s.get(d("contrato.docx")).content == b"v2" * 800
    assert_usage_is_a_recount(srv)


def test_an_overwrite_needs_room_only_for_what_it_adds_and_a_refusal_keeps_the_old(
        make_server):
    srv, s = open_space(make_server, tier="T100K")
    d = lambda p: srv.dav("acme", quote(p))  # noqa: E731
    assert s.put(d("a.bin"), data=b"a" * (60 * KIB)).status_code == 201
    assert s.put(d("b.bin"), data=b"b" * (30 * KIB)).status_code == 201
    # 75 KiB over 60 KiB with 10 KiB free: 15 KiB more than the plan has.
    r = s.put(d("a.bin"), data=b"x" * (75 * KIB))
    assert r.status_code == 507
    assert "necesita 75 KB y el plan tiene 70 KB disponibles" in r.text, r.text
    assert s.get(d("a.bin")).content == b"a" * (60 * KIB)
    assert versions_of(srv, "/a.bin") == []
    assert usage(srv) == (90 * KIB, 2) and held(srv) == (0, 0)
    # 50 KiB over it fits (the old 60 KiB leave the plan, as a version).
    assert s.delete(d("b.bin")).status_code == 204
    assert s.put(d("a.bin"), data=b"c" * (30 * KIB)).status_code == 204
    assert usage(srv) == (30 * KIB, 1) and held(srv) == (90 * KIB, 2)
    # Reclaim frees versions first, then the trash; current files are never touched.
    out = srv.cli("trash", "reclaim", "acme", "1K").stdout
    assert f"Liberados {60 * KIB} bytes (1 elementos)" in out
    assert versions_of(srv, "/a.bin") == []
    assert len(trash_list(srv)) == 1
    assert f"Liberados {30 * KIB} bytes" in srv.cli("trash", "reclaim", "acme", "1K").stdout
    assert s.get(d("a.bin")).content == b"c" * (30 * KIB)
    assert usage(srv) == (30 * KIB, 1) and held(srv) == (0, 0)
    assert_usage_is_a_recount(srv)


def test_word_save_by_rename_keeps_the_old_document_as_a_version_not_in_the_trash(
        make_server):
    srv, s = open_space(make_server)
    d = lambda p: srv.dav("acme", quote(p))  # noqa: E731
    old, new = b"version 1 " * 3000, b"version 2, con mas texto " * 5000
    assert s.put(d("doc.docx"), data=old).status_code == 201
    assert s.put(d("~WRL0001.tmp"), data=new).status_code == 201
    assert s.request("MOVE", d("doc.docx"),
                     headers={"Destination": d("~WRL0002.tmp")}).status_code == 201
    assert s.request("MOVE", d("~WRL0001.tmp"),
                     headers={"Destination": d("doc.docx")}).status_code == 201
    assert s.delete(d("~WRL0002.tmp")).status_code == 204

    assert s.get(d("doc.docx")).content == new
    assert trash_list(srv) == []
    (v,) = versions_of(srv, "/doc.docx")
    assert v["size"] == len(old)
    assert usage(srv) == (len(new), 1) and held(srv) == (len(old), 1)
    srv.cli("versions", "restore", "acme", str(v["id"]))
    assert s.get(d("doc.docx")).content == old
    assert_usage_is_a_recount(srv)


def test_word_save_by_rename_twice_keeps_both_earlier_versions(make_server):
    srv, s = open_space(make_server)
    d = lambda p: srv.dav("acme", quote(p))  # noqa: E731
    s.put(d("doc.docx"), data=b"uno")
    for n, body in ((1, b"dos"), (3, b"tres")):
        s.put(d(f"~WRL{n:04}.tmp"), data=body)
        s.request("MOVE", d("doc.docx"), headers={"Destination": d(f"~WRL{n + 1:04}.tmp")})
        s.request("MOVE", d(f"~WRL{n:04}.tmp"), headers={"Destination": d("doc.docx")})
        assert s.delete(d(f"~WRL{n + 1:04}.tmp")).status_code == 204
    assert s.get(d("doc.docx")).content == b"tres"
    assert [v["size"] for v in versions_of(srv, "/doc.docx")] == [3, 3]
    assert trash_list(srv) == []
    assert_usage_is_a_recount(srv)


def test_excel_save_by_rename_over_the_document_keeps_it_as_a_version(make_server):
    srv, s = open_space(make_server)
    d = lambda p: srv.dav("acme", quote(p))  # noqa: E731
    s.request("MKCOL", d("Nómina") + "/")
    old, new = b"A" * 70_000, b"B" * 45_000
    s.put(d("Nómina/libro.xlsx"), data=old)
    s.put(d("Nómina/3A2B1C00"), data=new)
    r = s.request("MOVE", d("Nómina/3A2B1C00"),
                  headers={"Destination": d("Nómina/libro.xlsx"), "Overwrite": "T"})
    assert r.status_code == 204, r.text
    assert s.get(d("Nómina/libro.xlsx")).content == new
    assert listed(s, d("Nómina") + "/") == {"Nómina", "libro.xlsx"}
    assert [v["size"] for v in versions_of(srv, "/Nómina/libro.xlsx")] == [len(old)]
    assert trash_list(srv) == []
    assert usage(srv) == (len(new), 2) and held(srv) == (len(old), 1)
    assert_usage_is_a_recount(srv)


def test_a_deleted_lone_temporary_file_goes_to_the_trash(make_server):
    """Without a save-by-rename in progress a '~$' or '.tmp' file is an ordinary file."""
    srv, s = open_space(make_server)
    d = lambda p: srv.dav("acme", quote(p))  # noqa: E731
    s.put(d("~$libro.xlsx"), data=b"owner file")
    s.delete(d("~$libro.xlsx"))
    s.put(d("doc.docx"), data=b"x")
    s.request("MOVE", d("doc.docx"), headers={"Destination": d("~WRL0005.tmp")})
    s.delete(d("~WRL0005.tmp"))  # the document never came back: trash, not a version
    assert sorted(i["path"] for i in trash_list(srv)) == ["/~$libro.xlsx", "/~WRL0005.tmp"]
    assert_usage_is_a_recount(srv)


def test_copy_over_a_file_keeps_a_version_and_move_over_a_folder_trashes_it(make_server):
    srv, s = open_space(make_server)
    d = lambda p: srv.dav("acme", quote(p))  # noqa: E731
    s.put(d("a.txt"), data=b"A" * 10)
    s.put(d("b.txt"), data=b"B" * 20)
    r = s.request("COPY", d("a.txt"), headers={"Destination": d("b.txt"), "Overwrite": "T"})
    assert r.status_code == 204, r.text
    assert s.get(d("b.txt")).content == b"A" * 10
    assert [v["size"] for v in versions_of(srv, "/b.txt")] == [20]
    s.request("MKCOL", d("x") + "/")
    s.put(d("x/uno.txt"), data=b"1" * 5)
    s.request("MKCOL", d("y") + "/")
    s.put(d("y/dos.txt"), data=b"2" * 7)
    r = s.request("MOVE", d("x") + "/", headers={"Destination": d("y") + "/",
                                                 "Overwrite": "T"})
    assert r.status_code == 204, r.text
    assert [(i["path"], i["size"]) for i in trash_list(srv)] == [("/y", 7)]
    assert s.get(d("y/uno.txt")).content == b"1" * 5
    assert_usage_is_a_recount(srv)


def test_versions_follow_a_renamed_file(make_server):
    srv, s = open_space(make_server)
    d = lambda p: srv.dav("acme", quote(p))  # noqa: E731
    s.put(d("a.txt"), data=b"1")
    s.put(d("a.txt"), data=b"22")
    s.request("MOVE", d("a.txt"), headers={"Destination": d("renombrado.txt")})
    assert versions_of(srv, "/a.txt") == []
    assert [v["size"] for v in versions_of(srv, "/renombrado.txt")] == [1]



NOTA_SET = ('<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:resguardo:t">'
            '<D:set><D:prop><Z:nota>revisada en cierre</Z:nota></D:prop></D:set>'
            '</D:propertyupdate>')
NOTA_GET = ('<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:Z="urn:resguardo:t">'
            '<D:prop><Z:nota/></D:prop></D:propfind>')


def test_versions_and_properties_follow_a_renamed_folder_with_accented_names(make_server):
    """A folder rename moves what the database keeps below it in one statement
    ('/Año 2024/x' -> '/Ejercicio é/x'): the cut must count characters, not
    bytes, on both databases."""
    srv, s = open_space(make_server)
    d = lambda p: srv.dav("acme", quote(p))  # noqa: E731
    assert s.request("MKCOL", d("Año 2024") + "/").status_code == 201
    assert s.request("MKCOL", d("Año 2024/Pólizas") + "/").status_code == 201
    s.put(d("Año 2024/Pólizas/diario.txt"), data=b"1")
    s.put(d("Año 2024/Pólizas/diario.txt"), data=b"22")
    assert s.request("PROPPATCH", d("Año 2024/Pólizas/diario.txt"), data=NOTA_SET.encode(),
                     headers={"Content-Type": "application/xml"}).status_code == 207
    r = s.request("MOVE", d("Año 2024") + "/",
                  headers={"Destination": d("Ejercicio é") + "/"})
    assert r.status_code == 201, r.text
    assert versions_of(srv, "/Año 2024/Pólizas/diario.txt") == []
    assert [v["size"] for v in versions_of(srv, "/Ejercicio é/Pólizas/diario.txt")] == [1]
    r = s.request("PROPFIND", d("Ejercicio é/Pólizas/diario.txt"), data=NOTA_GET.encode(),
                  headers={"Depth": "0", "Content-Type": "application/xml"})
    assert r.status_code == 207 and "revisada en cierre" in r.text, r.text
    assert s.get(d("Ejercicio é/Pólizas/diario.txt")).content == b"22"

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


def test_without_hard_links_an_overwrite_still_keeps_the_version(tmp_path, monkeypatch):
    """On a data folder whose filesystem refuses hard links (some network shares),
    an overwrite copies the old content into versions instead of failing (500).
    In-process on real SQLite and a real disk; only ``link`` is made to refuse."""
    import errno
    import os

    from spaces.access import service
    from spaces.access.files import space_files
    from spaces.core.db import open_database
    from spaces.core.settings_file import load_settings
    from spaces.files import store, versions

    cfg = tmp_path / "resguardo.toml"
    cfg.write_text(f'data_dir = "{tmp_path / "data"}"\n', encoding="utf-8")
    settings = load_settings(cfg)
    db = open_database(settings)
    info = service.create_space(settings, db, "acme", "4G")
    files = space_files(settings, db, info.id, info.name)

    def put(data: bytes) -> None:
        up = files.open_upload("libro.xlsx", len(data), exact=True)
        up.write(data)
        up.close()
        up.commit()

    put(b"primera version")

    def no_links(src, dst, *a, **kw):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(store.os, "link", no_links)  # what PosixStore.link calls
    put(b"segunda version")
    kept = versions.list_versions(files, "libro.xlsx")
    assert [v.size for v in kept] == [len(b"primera version")]
    entry, fh = versions.open_version(files, kept[0].id)
    with fh:
        assert fh.read() == b"primera version"
    assert (files.root / "libro.xlsx").read_bytes() == b"segunda version"
    u = service.get_space(db, "acme")
    assert (u.used_bytes, u.used_files) == (len(b"segunda version"), 1)
    assert (u.held_bytes, u.held_files) == (len(b"primera version"), 1)
    assert not os.listdir(files.root.parent / "tmp")
    db.dispose()
