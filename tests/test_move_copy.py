"""MOVE and COPY decide everything before they touch anything.

A MOVE or COPY with ``Overwrite: T`` replaces its destination. Whether it may
(a protected CFDI or a legal hold in what would be replaced, the room a copy
needs, a lock, the same file under another spelling) is decided first; a
refused request leaves the source, the destination, the trash and the versions
exactly as they were."""

from __future__ import annotations

import json
import unicodedata
from urllib.parse import quote

import pytest
from cfdi_docs import stamped_bytes
from drive_helpers import ANA, lock, raw, state
from web_drive_helpers import WebDrive

pytestmark = pytest.mark.db  # protections, holds and paths are decided in SQL

NFC = "Año"
NFD = unicodedata.normalize("NFD", NFC)


def setup(make_server, config: str = ""):
    srv = make_server(config).start()
    srv.create_space("alfa", "4G")
    srv.add_user("alfa", *ANA, role="admin")
    return srv


def put(srv, path: str, body: bytes) -> None:
    r = raw(srv, "PUT", f"/dav/alfa/{path}", auth=ANA, body=body)
    assert r.status in (201, 204), (path, r)


def mkcol(srv, path: str) -> None:
    assert raw(srv, "MKCOL", f"/dav/alfa/{path}", auth=ANA).status == 201, path


def trash_and_versions(srv) -> tuple[list, list]:
    items = json.loads(srv.cli("trash", "list", "alfa", "--json").stdout)
    d = srv.show("alfa")
    return items, [d["used_bytes"], d["used_files"]]


def everything(srv):
    return state(srv, "alfa"), trash_and_versions(srv), sorted(
        (r["path"], r["category"]) for r in json.loads(
            srv.cli("cfdi", "list", "alfa", "--all", "--json").stdout))


def overwrite(srv, method: str, src: str, dst: str, headers: dict | None = None):
    h = {"Destination": f"{srv.url}/dav/alfa/{dst}", "Overwrite": "T", **(headers or {})}
    return raw(srv, method, f"/dav/alfa/{src}", auth=ANA, headers=h)


@pytest.mark.parametrize("guard", ["protected", "held"])
def test_a_refused_move_or_copy_over_a_destination_holding_a_cfdi_changes_nothing(
        make_server, guard):
    srv = setup(make_server)
    xml, meta = stamped_bytes(3)
    mkcol(srv, "src/")
    put(srv, "src/a.txt", b"nuevo")
    put(srv, "file.txt", b"archivo")
    mkcol(srv, "dst/")
    put(srv, "dst/colega.docx", b"trabajo de un colega")
    mkcol(srv, "dst/sub/")
    put(srv, "dst/sub/f.xml", xml)
    put(srv, "dst/sub/otro.txt", b"otro")
    if guard == "held":  # the period ended, but a legal hold keeps the document
        srv.cli("retention", "hold", "alfa", "/dst")
        srv.cli("retention", "sweep", "--now", "2045-01-01")
    before = everything(srv)
    for method, src, dst in [("MOVE", "src/", "dst/"), ("COPY", "src/", "dst/"),
                             ("MOVE", "file.txt", "dst/"), ("COPY", "file.txt", "dst/"),
                             ("MOVE", "src/", "dst/sub/"), ("COPY", "src/", "dst/sub/"),
                             ("MOVE", "file.txt", "dst/sub/f.xml"),
                             ("COPY", "file.txt", "dst/sub/f.xml"),
                             ("MOVE", "src/", "dst/sub/f.xml")]:
        r = overwrite(srv, method, src, dst)
        assert r.status == 403, (method, src, dst, r)
        assert meta["uuid"] in r.body.decode() or "retención" in r.body.decode(), r
        assert everything(srv) == before, (method, src, dst)


def test_a_move_or_copy_over_a_locked_or_too_big_destination_changes_nothing(make_server):
    srv = setup(make_server, '[tiers.T64K]\nquota = "64K"\nmax_users = 5\ncfdi_years = 1\n')
    srv.cli("space", "tier", "alfa", "T64K")
    mkcol(srv, "src/")
    put(srv, "src/grande.bin", b"g" * 40_000)
    mkcol(srv, "dst/")
    put(srv, "dst/colega.docx", b"c" * 1000)
    put(srv, "dst/bloqueado.docx", b"b" * 1000)
    before = everything(srv)
    r = overwrite(srv, "COPY", "src/", "dst/")
    assert r.status == 507, r
    assert everything(srv) == before
    lock(srv, "alfa", "dst/bloqueado.docx", ANA)
    before = everything(srv)
    for method in ("MOVE", "COPY"):
        r = overwrite(srv, method, "src/", "dst/")
        assert r.status == 423, (method, r)
        assert everything(srv) == before, method


@pytest.mark.parametrize("is_dir", [False, True], ids=["file", "folder"])
def test_a_move_or_copy_onto_its_own_other_unicode_spelling_changes_nothing(
        make_server, is_dir):
    srv = setup(make_server)
    xml, _ = stamped_bytes(4)
    mkcol(srv, "x/")
    if is_dir:
        mkcol(srv, f"x/{quote(NFC)}/")
        put(srv, f"x/{quote(NFC)}/f.xml", xml)
        put(srv, f"x/{quote(NFC)}/other.txt", b"otro")
    else:
        put(srv, f"x/{quote(NFC)}.txt", b"uno")
        put(srv, f"x/{quote(NFC)}.txt", b"dos")  # one version already
    suffix = "/" if is_dir else ".txt"
    before = everything(srv)
    versions_before = srv.cli("versions", "list", "alfa", f"/x/{NFC}.txt", "--json").stdout
    for method in ("MOVE", "COPY"):
        for overwrite_flag in ("T", "F"):
            r = overwrite(srv, method, f"x/{quote(NFC)}{suffix}", f"x/{quote(NFD)}{suffix}",
                          {"Overwrite": overwrite_flag})
            assert r.status in (403, 412), (method, overwrite_flag, r)
            assert everything(srv) == before, (method, overwrite_flag)
    assert srv.cli("versions", "list", "alfa", f"/x/{NFC}.txt",
                   "--json").stdout == versions_before
    # The web drive's rename to the same name in another spelling changes nothing either.
    web = WebDrive(srv, "alfa", *ANA)
    name = NFC if is_dir else f"{NFC}.txt"
    r = web.action("renombrar", ruta=f"/x/{name}", nombre=unicodedata.normalize("NFD", name),
                   carpeta="/x")
    assert r.status_code == 403 and "mismo elemento" in r.text
    assert everything(srv) == before
    # A backup afterwards restores (no version hard-linked to the current file).
    archive = srv.base / "respaldo.tar"
    srv.cli("backup", str(archive), "--space", "alfa")
    fresh = make_server(name="fresh")
    fresh.cli("restore", str(archive))


def test_a_held_document_cannot_be_moved_out_of_the_held_folder(make_server):
    srv = setup(make_server)
    xml, meta = stamped_bytes(5)
    mkcol(srv, "2019/")
    mkcol(srv, "2019/enero/")
    put(srv, "2019/enero/f.xml", xml)
    mkcol(srv, "libre/")
    srv.cli("retention", "hold", "alfa", "/2019")
    srv.cli("retention", "sweep", "--now", "2045-01-01")  # the period is over
    web = WebDrive(srv, "alfa", *ANA)
    before = everything(srv)
    for method, src, dst in [("MOVE", "2019/enero/f.xml", "libre/f.xml"),
                             ("MOVE", "2019/enero/", "libre/enero/")]:
        r = raw(srv, method, f"/dav/alfa/{src}", auth=ANA,
                headers={"Destination": f"{srv.url}/dav/alfa/{dst}"})
        assert r.status == 403 and "retención legal" in r.body.decode(), (src, r)
    r = web.action("mover", ruta="/2019/enero/f.xml", destino="/libre")
    assert r.status_code == 403
    assert everything(srv) == before
    # Within the held folder it may still be renamed and moved; the hold keeps it.
    r = raw(srv, "MOVE", "/dav/alfa/2019/enero/f.xml", auth=ANA,
            headers={"Destination": f"{srv.url}/dav/alfa/2019/f-renombrada.xml"})
    assert r.status == 201, r
    assert raw(srv, "DELETE", "/dav/alfa/2019/f-renombrada.xml", auth=ANA).status == 403
    # The whole held folder may be renamed: the hold follows it.
    r = raw(srv, "MOVE", "/dav/alfa/2019/", auth=ANA,
            headers={"Destination": f"{srv.url}/dav/alfa/ejercicio-2019/"})
    assert r.status == 201, r
    assert raw(srv, "DELETE", "/dav/alfa/ejercicio-2019/f-renombrada.xml",
               auth=ANA).status == 403


def test_a_move_over_a_folder_that_holds_the_source_is_refused_and_changes_nothing(make_server):
    srv = setup(make_server)
    mkcol(srv, "a/")
    mkcol(srv, "a/b/")
    put(srv, "a/b/x.txt", b"x")
    put(srv, "a/y.txt", b"y")
    before = everything(srv)
    for method in ("MOVE", "COPY"):
        r = overwrite(srv, method, "a/b/", "a/")
        assert r.status in (403, 409), (method, r)
        assert everything(srv) == before, method
