"""Earlier versions on the live drive: an overwrite keeps the previous content as a
version (Office's save-by-rename included, COPY and MOVE over a file too), versions
follow renames, live in the space's reserve outside the plan, and an overwrite on a
filesystem without hard links still keeps them."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from trash_helpers import (
    KIB,
    assert_usage_is_a_recount,
    held,
    listed,
    open_space,
    trash_list,
    usage,
    versions_of,
)

# Its outcome depends on the database: runs on SQLite and on PostgreSQL.
pytestmark = pytest.mark.db


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
