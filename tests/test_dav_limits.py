"""Limits on what a member (or an unpaid space) can do through the drive and the
web drive: read-only spaces, locks, dead properties, entries and depth, XML
bodies. Real server, real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import re

import pytest
from test_drive_access import ANA, LOCK_BODY, PROPPATCH_BODY, lock, raw, state, two_spaces
from test_web_drive import WebDrive, _db

pytestmark = pytest.mark.db  # statuses, properties, locks and counters live in SQL

READ_ONLY = "solo lectura"


def _set_status(srv, space: str, status: str) -> None:
    from spaces import service

    db = _db(srv)
    service.set_status(db, space, status)
    db.dispose()


def test_a_read_only_space_refuses_every_write_on_both_drives_and_still_reads(make_server):
    """An unpaid (read-only) space: members still browse, download and release
    their own locks; every change is refused, through every door, with the
    same Spanish reason, and nothing changes."""
    srv = two_spaces(make_server)
    here = srv.url
    assert raw(srv, "PUT", "/dav/alfa/f.txt", auth=ANA, body=b"de alfa, v2\n").status == 204
    assert raw(srv, "PUT", "/dav/alfa/borrado.txt", auth=ANA, body=b"b\n").status == 201
    assert raw(srv, "DELETE", "/dav/alfa/borrado.txt", auth=ANA).status == 204
    token = lock(srv, "alfa", "carpeta/x.txt", ANA)
    web = WebDrive(srv, "alfa", *ANA)
    trash_page = web.s.get(web.url("papelera"), timeout=30).text
    item = re.search(r"/papelera/(\d+)/restaurar", trash_page).group(1)
    versions_page = web.s.get(web.url("versiones"), params={"ruta": "/f.txt"}, timeout=30).text
    vid = re.search(r"/versiones/(\d+)/descargar", versions_page).group(1)

    _set_status(srv, "alfa", "readonly")
    before = state(srv, "alfa")
    dav_writes = [
        ("PUT", "/dav/alfa/f.txt", {}, b"pisado"),
        ("PUT", "/dav/alfa/nuevo.txt", {}, b"nuevo"),
        ("MKCOL", "/dav/alfa/nueva/", {}, None),
        ("DELETE", "/dav/alfa/f.txt", {}, None),
        ("DELETE", "/dav/alfa/carpeta/", {"If": f"({token})"}, None),
        ("MOVE", "/dav/alfa/f.txt", {"Destination": f"{here}/dav/alfa/g.txt"}, None),
        ("COPY", "/dav/alfa/f.txt", {"Destination": f"{here}/dav/alfa/g.txt"}, None),
        ("PROPPATCH", "/dav/alfa/f.txt", {}, PROPPATCH_BODY),
        ("LOCK", "/dav/alfa/f.txt", {}, LOCK_BODY),
        ("LOCK", "/dav/alfa/nuevo-bloqueado.txt", {}, LOCK_BODY),
    ]
    for method, path, headers, body in dav_writes:
        r = raw(srv, method, path, auth=ANA, headers=headers, body=body)
        assert r.status == 403, (method, path, r)
        assert READ_ONLY in r.body.decode(), (method, r.body)
    web.page = versions_page
    web_writes = [
        ("carpeta", {"nombre": "Nueva"}),
        ("renombrar", {"ruta": "/f.txt", "nombre": "g.txt"}),
        ("mover", {"ruta": "/f.txt", "destino": "/carpeta"}),
        ("borrar", {"ruta": "/f.txt"}),
        (f"papelera/{item}/restaurar", {}),
        (f"papelera/{item}/eliminar", {}),
        ("papelera/vaciar", {}),
        ("papelera/liberar", {"cantidad": "1K"}),
        (f"versiones/{vid}/restaurar", {"ruta": "/f.txt"}),
        ("enlaces/crear", {"ruta": "/f.txt", "dias": "7"}),
    ]
    for action, form in web_writes:
        r = web.action(action, **form)
        assert r.status_code == 403, (action, r.status_code)
        assert READ_ONLY in r.text, action
    r = web.upload("/", "subido.txt", b"hola")
    assert r.status_code == 403 and READ_ONLY in r.json()["message"]
    assert state(srv, "alfa") == before
    assert item in web.s.get(web.url("papelera"), timeout=30).text

    # Reading, downloading and releasing one's own lock still work.
    assert raw(srv, "GET", "/dav/alfa/f.txt", auth=ANA).body == b"de alfa, v2\n"
    assert raw(srv, "PROPFIND", "/dav/alfa/", auth=ANA, headers={"Depth": "1"}).status == 207
    assert web.download("/f.txt").content == b"de alfa, v2\n"
    assert web.s.get(web.url(f"versiones/{vid}/descargar"), timeout=30).status_code == 200
    assert raw(srv, "UNLOCK", "/dav/alfa/carpeta/x.txt", auth=ANA,
               headers={"Lock-Token": token}).status == 204

    # Paid again: writes work at once.
    _set_status(srv, "alfa", "active")
    assert raw(srv, "DELETE", "/dav/alfa/f.txt", auth=ANA).status == 204


# -- 13.13: XML bodies ------------------------------------------------------------------

_DTD_PROPPATCH = ('<?xml version="1.0" encoding="{enc}"?>'
                  '<!DOCTYPE p [<!ENTITY x "expandido">]>'
                  '<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop>'
                  '<Z:nota>&x;</Z:nota></D:prop></D:set></D:propertyupdate>')
_PLAIN_PROPPATCH = ('<?xml version="1.0" encoding="{enc}"?>'
                    '<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set><D:prop>'
                    '<Z:nota>ñandú</Z:nota></D:prop></D:set></D:propertyupdate>')
_ENCODINGS = [  # (name in the declaration, Python codec, byte-order mark)
    ("UTF-8", "utf-8", b""), ("UTF-8", "utf-8", b"\xef\xbb\xbf"),
    ("UTF-16", "utf-16-le", b"\xff\xfe"), ("UTF-16", "utf-16-be", b"\xfe\xff"),
    ("UTF-16LE", "utf-16-le", b""), ("UTF-16BE", "utf-16-be", b""),
    ("UTF-32", "utf-32-le", b"\xff\xfe\x00\x00"), ("UTF-32", "utf-32-be", b"\x00\x00\xfe\xff"),
    ("UTF-32LE", "utf-32-le", b""), ("UTF-32BE", "utf-32-be", b""),
    ("ISO-8859-1", "latin-1", b""), ("IBM037", "cp037", b""), ("UTF-7", "utf-7", b""),
]


def _xml_space(make_server):
    srv = make_server().start()
    srv.create_space("alfa", "4G")
    srv.add_user("alfa", *ANA, role="admin")
    assert raw(srv, "PUT", "/dav/alfa/f.txt", auth=ANA, body=b"f").status == 201
    return srv


def _all_props(srv, path: str, depth: str = "0") -> str:
    r = raw(srv, "PROPFIND", path, auth=ANA, headers={"Depth": depth})
    assert r.status == 207, r
    assert " 500 " not in r.body.decode(), r.body  # not even one property's status
    return r.body.decode()


def test_a_dtd_in_any_encoding_is_refused_and_plain_xml_in_any_encoding_works(make_server):
    """The same PROPPATCH in every encoding XML allows (with and without a byte
    order mark, EBCDIC and UTF-7 included): with a DOCTYPE it is refused before
    any parser sees it and nothing is stored; without one it is stored, and
    every PROPFIND reads it back."""
    srv = _xml_space(make_server)
    for name, codec, bom in _ENCODINGS:
        body = bom + _DTD_PROPPATCH.format(enc=name).encode(codec)
        r = raw(srv, "PROPPATCH", "/dav/alfa/f.txt", auth=ANA, body=body,
                headers={"Content-Type": "application/xml"})
        assert r.status == 400, (name, codec, r)
        assert "expandido" not in _all_props(srv, "/dav/alfa/f.txt"), (name, codec)
    for name, codec, bom in _ENCODINGS:
        body = bom + _PLAIN_PROPPATCH.format(enc=name).encode(codec)
        r = raw(srv, "PROPPATCH", "/dav/alfa/f.txt", auth=ANA, body=body,
                headers={"Content-Type": "application/xml"})
        assert r.status == 207 and "200 OK" in r.body.decode(), (name, codec, r)
        assert "ñandú" in _all_props(srv, "/dav/alfa/f.txt"), (name, codec)
        assert "ñandú" in _all_props(srv, "/dav/alfa/", "1"), (name, codec)


def test_a_stored_property_that_is_not_xml_never_makes_a_propfind_fail(make_server):
    """A value stored before today's checks (a DTD's entity, a cut value):
    PROPFIND, named, allprop and of the folder, answers 207 with it as not
    found, never as a 500 (neither the request nor that property's status)."""
    import sqlalchemy as sa

    srv = _xml_space(make_server)
    engine = sa.create_engine(srv.db_url)
    with engine.begin() as c:
        for i, value in enumerate(['<Z:a xmlns:Z="urn:z">&x;</Z:a>', "<Z:b xmlns:Z='urn:z'>",
                                   "no es xml", "<!DOCTYPE p><p/>"]):
            c.execute(sa.text("INSERT INTO dav_properties (path, name, value) "
                              "VALUES ('/dav/alfa/f.txt', :n, :v)"),
                      {"n": f"{{urn:z}}roto{i}", "v": value})
    engine.dispose()
    named = ('<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:Z="urn:z"><D:prop>'
             '<Z:roto0/><Z:roto1/><Z:roto2/><Z:roto3/><D:getcontentlength/></D:prop>'
             '</D:propfind>')
    r = raw(srv, "PROPFIND", "/dav/alfa/f.txt", auth=ANA, headers={"Depth": "0"}, body=named)
    assert r.status == 207 and "<D:getcontentlength>1<" in r.body.decode(), r
    assert " 500 " not in r.body.decode(), r.body
    _all_props(srv, "/dav/alfa/f.txt")
    assert "/dav/alfa/f.txt" in _all_props(srv, "/dav/alfa/", "1")
