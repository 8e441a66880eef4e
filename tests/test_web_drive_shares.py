"""The web drive's share links: off until an admin turns them on, password, expiry and
revocation, confined below the shared folder, bound to the object they were made for, and
revoked with the user who made them."""

from __future__ import annotations

import io
import os
import re
import zipfile
from datetime import timedelta

import pytest
import requests
from sqlalchemy import update
from web_drive_helpers import CSRF_RE, KIB, WebDrive, _db, _share, setup

# -- share links ------------------------------------------------------------------------

def test_share_links_are_off_until_an_admin_turns_them_on(make_server):
    srv, dav, web = setup(make_server)  # ana is an editor
    web.upload("/", "a.txt", b"a")
    r, link = _share(web, "/a.txt")
    assert r.status_code == 403 and link is None and "desactivados" in r.text
    assert web.action("enlaces/activar", activar="1").status_code == 403
    srv.add_user("acme", "jefa", "secreto-jefa-1", role="admin")
    admin = WebDrive(srv, "acme", "jefa", "secreto-jefa-1")
    r = admin.action("enlaces/activar", activar="1")
    assert r.status_code == 200 and "activados" in r.text
    r, link = _share(web, "/a.txt")
    assert r.status_code == 201 and link
    assert requests.get(link, timeout=30).status_code == 200


@pytest.mark.db
def test_share_link_with_password_expiry_and_revocation(make_server):
    srv, dav, web = setup(make_server, role="admin")
    web.action("enlaces/activar", activar="1")
    data = os.urandom(50 * KIB)
    web.upload("/", "estado de cuenta.pdf", data)
    r, link = _share(web, "/estado de cuenta.pdf", clave="clave-del-enlace")
    assert r.status_code == 201 and link.startswith(srv.url + "/compartido/")
    token = link.rsplit("/", 1)[1]
    # The token is not stored, only its hash.
    from sqlalchemy import select

    from spaces.core.models import ShareLink

    db = _db(srv)
    with db.session() as s:
        row = s.scalar(select(ShareLink))
        assert row.token_hash != token and token not in (row.password_hash or "")

    visitor = requests.Session()
    r = visitor.get(link, timeout=30)
    assert r.status_code == 401 and "Enlace protegido" in r.text
    assert visitor.get(link + "/descargar", timeout=30).url.endswith(token)  # asks first
    csrf = CSRF_RE.search(r.text).group(1)
    r = visitor.post(link, data={"csrf_token": csrf, "clave": "equivocada"}, timeout=30)
    assert r.status_code == 403 and "incorrecta" in r.text
    r = visitor.post(link, data={"csrf_token": csrf, "clave": "clave-del-enlace"}, timeout=30)
    assert r.status_code == 200 and "estado de cuenta.pdf" in r.text
    r = visitor.get(link + "/descargar", timeout=30)
    assert r.status_code == 200 and r.content == data
    # Read-only: the link gives no way to write (no such routes), and ruta is ignored for a file.
    r = visitor.get(link + "/descargar", params={"ruta": "/../otro"}, timeout=30)
    assert r.content == data

    # Listed for the admin, with its download count; revoked -> 410 in Spanish.
    page = web.s.get(web.url("enlaces"), timeout=30).text
    assert "/estado de cuenta.pdf" in page and "vigente" in page
    link_id = re.search(r"/enlaces/(\d+)/revocar", page).group(1)
    r = web.action(f"enlaces/{link_id}/revocar")
    assert r.status_code == 200 and "revocado" in r.text
    r = visitor.get(link, timeout=30)
    assert r.status_code == 410 and "revocado" in r.text
    assert visitor.get(link + "/descargar", timeout=30).status_code == 410

    # Expired -> 410 with the date.
    r, link2 = _share(web, "/estado de cuenta.pdf", days="1")
    from spaces.core.models import utcnow

    with db.session() as s:
        s.execute(update(ShareLink).where(ShareLink.revoked_at.is_(None))
                  .values(expires_at=utcnow() - timedelta(minutes=1)))
    r = requests.get(link2, timeout=30)
    assert r.status_code == 410 and "venció" in r.text
    assert requests.get(srv.url + "/compartido/no-existe", timeout=30).status_code == 404
    db.dispose()


@pytest.mark.db
def test_shared_folder_lists_and_zips_only_what_is_below_it(make_server):
    srv, dav, web = setup(make_server, role="admin")
    web.action("enlaces/activar", activar="1")
    web.action("carpeta", nombre="Para el cliente")
    web.action("carpeta", carpeta="/Para el cliente", nombre="sub")
    web.upload("/Para el cliente", "a.txt", b"A")
    web.upload("/Para el cliente/sub", "b.txt", b"B")
    web.upload("/", "interno.txt", b"secreto")
    r, link = _share(web, "/Para el cliente")
    assert r.status_code == 201
    v = requests.Session()
    r = v.get(link, timeout=30)
    assert r.status_code == 200 and "a.txt" in r.text and "sub" in r.text
    assert "interno.txt" not in r.text
    assert v.get(link + "/descargar", params={"ruta": "/sub/b.txt"}, timeout=30).content == b"B"
    for bad in ("/../interno.txt", "/sub/../../interno.txt"):
        r = v.get(link + "/descargar", params={"ruta": bad}, timeout=30)
        assert r.status_code == 400 and b"secreto" not in r.content, bad
    r = v.get(link + "/descargar", timeout=30)
    z = zipfile.ZipFile(io.BytesIO(r.content))
    assert {n: z.read(n) for n in z.namelist() if not n.endswith("/")} == {
        "Para el cliente/a.txt": b"A", "Para el cliente/sub/b.txt": b"B"}
    # Turning links off stops every link at once.
    web.action("enlaces/activar", activar="0")
    assert v.get(link, timeout=30).status_code == 410


# -- a share link is bound to the object it was made for ----------------------------------------

def _mv(dav, srv, src: str, dst: str) -> None:
    r = dav.request("MOVE", srv.dav("acme", src), headers={"Destination": srv.dav("acme", dst)})
    assert r.status_code in (201, 204), (src, dst, r.status_code)


@pytest.mark.db
def test_a_share_link_follows_its_own_object_and_never_serves_another(make_server):
    """Swapping two folders once made a link serve the other folder. A link now
    follows what it was made for (renames and moves, through WebDAV and the web
    drive) and dies with it: deleted, or replaced by something else at its path."""
    srv, dav, web = setup(make_server, role="admin")
    web.action("enlaces/activar", activar="1")
    for folder, content in (("Publico", b"para todos"), ("Privado", b"secreto")):
        web.action("carpeta", nombre=folder)
        web.upload(f"/{folder}", "f.txt", content)
    _, folder_link = _share(web, "/Publico")
    _, file_link = _share(web, "/Publico/f.txt")
    v = requests.Session()

    def served(link: str, ruta: str | None = None) -> tuple[int, bytes]:
        r = v.get(link + "/descargar", params={"ruta": ruta} if ruta else None, timeout=30)
        return r.status_code, r.content

    assert served(folder_link, "/f.txt") == (200, b"para todos")
    # swap the folders through WebDAV: the link follows Publico, now named Privado
    _mv(dav, srv, "Publico/", "tmp/")
    _mv(dav, srv, "Privado/", "Publico/")
    _mv(dav, srv, "tmp/", "Privado/")
    assert served(folder_link, "/f.txt") == (200, b"para todos")
    assert served(file_link) == (200, b"para todos")
    # and through the web drive: rename, move into another folder
    web.action("renombrar", ruta="/Privado", nombre="Compartida")
    web.action("carpeta", nombre="Archivo")
    web.action("mover", ruta="/Compartida", destino="/Archivo")
    assert served(folder_link, "/f.txt") == (200, b"para todos")
    assert served(file_link) == (200, b"para todos")
    page = web.s.get(web.url("enlaces"), timeout=30).text
    assert "/Archivo/Compartida" in page
    # the file replaced by another one at the same path: the file's link dies
    assert dav.put(srv.dav("acme", "Archivo/Compartida/f.txt"), data=b"otro").status_code == 204
    assert served(file_link)[0] == 410
    assert served(folder_link, "/f.txt") == (200, b"otro")  # the folder is the same one
    # the folder deleted, then a new one of the same name: the folder's link dies
    assert dav.delete(srv.dav("acme", "Archivo/Compartida/")).status_code == 204
    web.action("carpeta", carpeta="/Archivo", nombre="Compartida")
    web.upload("/Archivo/Compartida", "f.txt", b"nuevo secreto")
    assert served(folder_link, "/f.txt")[0] == 410
    assert requests.get(folder_link, timeout=30).status_code == 410
    # restored from the trash it stays dead: a deleted object's link does not come back
    from spaces.access import service
    from spaces.access.files import space_files
    from spaces.core.settings_file import load_settings
    from spaces.files import trash

    db = _db(srv)
    info = service.get_space(db, "acme")
    files = space_files(load_settings(srv.config), db, info.id, info.name)
    item = next(t for t in trash.list_trash(files) if t.path == "/Archivo/Compartida")
    trash.restore_from_trash(files, item.id)
    db.dispose()
    assert requests.get(folder_link, timeout=30).status_code == 410


@pytest.mark.db
def test_removing_a_user_stops_the_links_it_made(make_server):
    srv, dav, web = setup(make_server, role="admin")
    web.action("enlaces/activar", activar="1")
    web.upload("/", "a.txt", b"a")
    srv.add_user("acme", "eva", "secreto-eva-1", role="editor")
    eva = WebDrive(srv, "acme", "eva", "secreto-eva-1")
    _, link = _share(eva, "/a.txt")
    assert requests.get(link + "/descargar", timeout=30).content == b"a"
    srv.cli("user", "remove", "acme", "eva")
    r = requests.get(link + "/descargar", timeout=30)
    assert r.status_code == 410 and b"a" != r.content
