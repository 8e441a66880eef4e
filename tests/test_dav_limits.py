"""Limits on what a member (or an unpaid space) can do through the drive and the
web drive: read-only spaces, locks, dead properties, entries and depth, XML
bodies. Real server, real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import re

from test_drive_access import ANA, LOCK_BODY, PROPPATCH_BODY, lock, raw, state, two_spaces
from test_web_drive import WebDrive, _db

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
