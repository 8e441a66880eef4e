"""The web drive (portal) against the real server, side by side with the WebDAV
drive: both go through the same domain functions, so the same quota refusal,
the same role refusal, the same CFDI protection and the same confinement to
one space hold on both. Plus ZIP downloads and share links."""

from __future__ import annotations

import io
import os
import re
import zipfile
from datetime import timedelta
from urllib.parse import quote

import pytest
import requests
from conftest import SHARED
from sqlalchemy import update

MAKE_CFDI = SHARED / "tools" / "make_cfdi.py"
CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
UPLOAD_CSRF_RE = re.compile(r'data-csrf="([^"]+)"')

SMALL = """
[tiers.T100K]
quota = "100K"
max_users = 5
cfdi_years = 1
"""
KIB = 1024


class WebDrive:
    """A member's browser session on the web drive, over real HTTP."""

    def __init__(self, srv, space: str, user: str, password: str) -> None:
        self.srv, self.space = srv, space
        self.s = requests.Session()
        r = self.s.get(f"{srv.url}/unidad/entrar", timeout=30)
        token = CSRF_RE.search(r.text).group(1)
        r = self.s.post(f"{srv.url}/unidad/entrar", data={
            "csrf_token": token, "space": space, "username": user, "password": password},
            timeout=30)
        assert r.status_code == 200 and r.url.endswith(f"/unidad/{space}/"), (r.url, r.text)
        self.page = r.text

    def url(self, action: str = "", space: str | None = None) -> str:
        return f"{self.srv.url}/unidad/{space or self.space}/{action}"

    def browse(self, folder: str = "/", space: str | None = None) -> requests.Response:
        r = self.s.get(self.url(space=space), params={"ruta": folder}, timeout=30)
        self.page = r.text
        return r

    def csrf(self) -> str:
        if not CSRF_RE.search(self.page):
            self.browse()
        return CSRF_RE.search(self.page).group(1)

    def upload(self, folder: str, name: str, data: bytes, *, csrf: bool = True,
               space: str | None = None) -> requests.Response:
        headers = {"Content-Type": "application/octet-stream"}
        if csrf:
            headers["X-CSRFToken"] = self.csrf()
        return self.s.post(self.url("subir", space), params={"carpeta": folder, "nombre": name},
                           data=data, headers=headers, timeout=60)

    def action(self, action: str, **form: str) -> requests.Response:
        form.setdefault("carpeta", "/")
        return self.s.post(self.url(action), data={"csrf_token": self.csrf(), **form},
                           timeout=60)

    def download(self, path: str) -> requests.Response:
        return self.s.get(self.url("descargar"), params={"ruta": path}, timeout=60)


def setup(make_server, tier: str = "4G", config: str = "", role: str = "editor"):
    srv = make_server(config).start()
    srv.create_space("acme", tier)
    srv.add_user("acme", "ana", "secreto-ana-1", role=role)
    dav = requests.Session()
    dav.auth = ("ana", "secreto-ana-1")
    return srv, dav, WebDrive(srv, "acme", "ana", "secreto-ana-1")


def usage(srv, space: str = "acme") -> tuple[int, int]:
    d = srv.show(space)
    return d["used_bytes"], d["used_files"]


def test_member_uploads_browses_and_downloads_with_the_real_utf8_name(make_server):
    srv, dav, web = setup(make_server)
    data = os.urandom(300 * KIB)
    r = web.upload("/", "Balanza de comprobación ñ.xlsx", data)
    assert r.status_code == 201, r.text
    assert r.json()["ok"] is True
    page = web.browse("/").text
    assert "Balanza de comprobación ñ.xlsx" in page and "300" in page
    r = web.download("/Balanza de comprobación ñ.xlsx")
    assert r.status_code == 200 and r.content == data
    cd = r.headers["Content-Disposition"]
    assert cd.startswith("attachment;")
    assert "filename*=UTF-8''" + quote("Balanza de comprobación ñ.xlsx", safe="") in cd
    # The same file, byte for byte, over WebDAV; counted once.
    assert dav.get(srv.dav("acme", quote("Balanza de comprobación ñ.xlsx"))).content == data
    assert usage(srv) == (len(data), 1)
    # Overwriting answers 200 and replaces.
    r = web.upload("/", "Balanza de comprobación ñ.xlsx", b"nuevo")
    assert r.status_code == 200
    assert web.download("/Balanza de comprobación ñ.xlsx").content == b"nuevo"
    assert usage(srv) == (5, 1)  # the old content, a version, is in the reserve
    assert not list((srv.data / "spaces" / "acme" / "tmp").iterdir())
    # Audited like the drive's changes: who, from where, through the web.
    import json

    rows = json.loads(srv.cli("audit", "list", "--space", "acme", "--json").stdout)
    web_rows = [r for r in rows if r.get("via") == "web"]
    assert {r["accion"] for r in web_rows} >= {"upload", "overwrite"}, rows
    assert all(r["usuario"] == "ana" and r["direccion"] == "127.0.0.1" for r in web_rows)



def _dav_etag(dav, url: str) -> str:
    """The getetag a Depth: 0 PROPFIND reports, as an ETag header says it (quoted)."""
    r = dav.request("PROPFIND", url, headers={"Depth": "0"}, timeout=30)
    assert r.status_code == 207, r.text
    tag = re.search(r"getetag>([^<]+)</", r.text).group(1).strip('"')
    return f'"{tag}"'


def test_a_download_answers_ranges_and_revalidation_with_the_drives_etag(make_server):
    srv, dav, web = setup(make_server, role="admin")
    data = os.urandom(200 * KIB)
    assert web.upload("/", "Póliza enero.pdf", data).status_code == 201
    r = web.download("/Póliza enero.pdf")
    assert r.status_code == 200 and r.content == data
    assert r.headers["Accept-Ranges"] == "bytes"
    assert r.headers["Content-Length"] == str(len(data))
    etag, modified = r.headers["ETag"], r.headers["Last-Modified"]
    # The same opaque ETag as the drive's, by GET and by PROPFIND.
    url = srv.dav("acme", quote("Póliza enero.pdf"))
    assert dav.get(url, timeout=30).headers["ETag"] == etag
    assert _dav_etag(dav, url) == etag
    # The protections of a download stay: a named attachment, not cached, the CSP.
    for resp in (r, ranged := web.s.get(web.url("descargar"),
                                        params={"ruta": "/Póliza enero.pdf"},
                                        headers={"Range": "bytes=1000-2999"}, timeout=30)):
        assert resp.headers["Content-Disposition"].startswith("attachment;")
        assert "filename*=UTF-8''" + quote("Póliza enero.pdf", safe="") in \
            resp.headers["Content-Disposition"]
        assert resp.headers["Cache-Control"] == "private, no-store"
        assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
    # A range: 206 with exactly those bytes (a suffix too); one past the end is 416.
    assert ranged.status_code == 206 and ranged.content == data[1000:3000]
    assert ranged.headers["Content-Range"] == f"bytes 1000-2999/{len(data)}"
    r = web.s.get(web.url("descargar"), params={"ruta": "/Póliza enero.pdf"},
                  headers={"Range": "bytes=-100"}, timeout=30)
    assert r.status_code == 206 and r.content == data[-100:]
    r = web.s.get(web.url("descargar"), params={"ruta": "/Póliza enero.pdf"},
                  headers={"Range": f"bytes={len(data)}-"}, timeout=30)
    assert r.status_code == 416
    assert r.headers["Content-Range"] == f"bytes */{len(data)}"
    # Revalidation: 304 without a body while the file is the same.
    for cond in ({"If-None-Match": etag}, {"If-Modified-Since": modified}):
        r = web.s.get(web.url("descargar"), params={"ruta": "/Póliza enero.pdf"},
                      headers=cond, timeout=30)
        assert r.status_code == 304 and r.content == b"", cond
        assert r.headers["ETag"] == etag
    # Changed: the whole new file, with the drive's new ETag; a resumed download
    # (If-Range) of what changed meanwhile gets the whole file, not a piece of it.
    new = os.urandom(50 * KIB)
    assert dav.put(url, data=new).status_code == 204
    r = web.s.get(web.url("descargar"), params={"ruta": "/Póliza enero.pdf"},
                  headers={"If-None-Match": etag}, timeout=30)
    assert r.status_code == 200 and r.content == new and r.headers["ETag"] != etag
    assert r.headers["ETag"] == dav.get(url, timeout=30).headers["ETag"]
    r = web.s.get(web.url("descargar"), params={"ruta": "/Póliza enero.pdf"},
                  headers={"Range": "bytes=0-9", "If-Range": etag}, timeout=30)
    assert r.status_code == 200 and r.content == new
    # A share link serves its file the same way.
    web.action("enlaces/activar", activar="1")
    r, link = _share(web, "/Póliza enero.pdf")
    assert r.status_code == 201
    v = requests.Session()
    r = v.get(link + "/descargar", headers={"Range": "bytes=10-19"}, timeout=30)
    assert r.status_code == 206 and r.content == new[10:20]
    r = v.get(link + "/descargar", headers={"If-None-Match": r.headers["ETag"]}, timeout=30)
    assert r.status_code == 304

@pytest.mark.db
def test_folders_rename_move_and_delete_go_through_the_drive(make_server):
    srv, dav, web = setup(make_server)
    assert web.action("carpeta", nombre="Clientes").status_code == 200
    assert web.action("carpeta", carpeta="/Clientes", nombre="2026").status_code == 200
    assert web.upload("/", "factura.pdf", b"%PDF-1.4 hola").status_code == 201
    r = web.action("renombrar", ruta="/factura.pdf", nombre="factura-enero.pdf")
    assert r.status_code == 200
    r = web.action("mover", ruta="/factura-enero.pdf", destino="/Clientes/2026")
    assert r.status_code == 200
    assert dav.get(srv.dav("acme", "Clientes/2026/factura-enero.pdf")).content == b"%PDF-1.4 hola"
    # A folder cannot go inside itself; a taken name is refused (409) and nothing moves.
    r = web.action("mover", ruta="/Clientes", destino="/Clientes/2026")
    assert r.status_code == 400
    assert web.action("carpeta", nombre="Clientes").status_code == 409
    # Windows-invalid names are refused like on the drive.
    r = web.action("carpeta", nombre="con")
    assert r.status_code == 400 and "reservado de Windows" in r.text
    r = web.action("borrar", carpeta="/Clientes", ruta="/Clientes")
    assert r.status_code == 200
    assert dav.request("PROPFIND", srv.dav("acme", "Clientes/"),
                       headers={"Depth": "0"}).status_code == 404
    assert not list(srv.files_root("acme").iterdir())


@pytest.mark.db
def test_quota_refusal_is_the_same_on_the_web_and_on_webdav(make_server):
    srv, dav, web = setup(make_server, "T100K", SMALL)
    assert web.upload("/", "a.bin", b"a" * 60 * KIB).status_code == 201
    before = usage(srv)
    big = b"b" * 60 * KIB
    r_web = web.upload("/", "b.bin", big)
    r_dav = dav.put(srv.dav("acme", "c.bin"), data=big)
    assert r_web.status_code == 507 and r_dav.status_code == 507
    body = r_web.json()
    assert body["error"] == "Sin espacio"
    # The same Spanish sentence from the same domain refusal.
    assert body["message"].strip() == r_dav.text.strip()
    assert "Espacio insuficiente" in body["message"]
    # Nothing stored, nothing counted, no temporary file left.
    assert usage(srv) == before
    assert sorted(p.name for p in srv.files_root("acme").iterdir()) == ["a.bin"]
    assert not list((srv.data / "spaces" / "acme" / "tmp").iterdir())
    # Filled to the byte: one more byte is refused on both, by the same rule.
    assert web.upload("/", "c.bin", b"c" * 40 * KIB).status_code == 201
    assert usage(srv)[0] == 100 * KIB
    assert web.upload("/", "d.bin", b"d").status_code == 507
    assert dav.put(srv.dav("acme", "d.bin"), data=b"d").status_code == 507
    # With the space full it can still read, move and delete.
    assert web.action("renombrar", ruta="/c.bin", nombre="c2.bin").status_code == 200
    assert web.action("borrar", ruta="/c2.bin").status_code == 200
    assert sorted(p.name for p in srv.files_root("acme").iterdir()) == ["a.bin"]


def test_reader_is_refused_every_write_on_both_drives_with_the_same_reason(make_server):
    srv, dav, web = setup(make_server)
    web.upload("/", "balance.xlsx", b"datos")
    web.action("carpeta", nombre="Archivo")
    srv.add_user("acme", "rita", "secreto-rita-1", role="reader")
    reader = WebDrive(srv, "acme", "rita", "secreto-rita-1")
    rdav = requests.Session()
    rdav.auth = ("rita", "secreto-rita-1")
    assert "sólo puede ver y descargar" in reader.page
    assert 'id="zona-subida"' not in reader.page
    assert reader.download("/balance.xlsx").content == b"datos"

    r = reader.upload("/", "nuevo.txt", b"hola")
    d = rdav.put(srv.dav("acme", "nuevo.txt"), data=b"hola")
    assert r.status_code == 403 and d.status_code == 403
    assert r.json()["message"].strip() == d.text.strip()
    assert "solo de lectura" in d.text and "rita" in d.text
    for action, form in (("carpeta", {"nombre": "X"}),
                         ("renombrar", {"ruta": "/balance.xlsx", "nombre": "b.xlsx"}),
                         ("mover", {"ruta": "/balance.xlsx", "destino": "/Archivo"}),
                         ("borrar", {"ruta": "/balance.xlsx"})):
        r = reader.action(action, **form)
        assert r.status_code == 403 and "solo de lectura" in r.text, (action, r.status_code)
    assert rdav.delete(srv.dav("acme", "balance.xlsx")).status_code == 403
    assert sorted(p.name for p in srv.files_root("acme").iterdir()) == ["Archivo",
                                                                        "balance.xlsx"]


@pytest.mark.db
def test_a_changed_role_or_a_removed_user_applies_at_once(make_server):
    srv, dav, web = setup(make_server)
    assert web.upload("/", "a.txt", b"a").status_code == 201
    from spaces.access import service

    db = _db(srv)
    service.set_role(db, "acme", "ana", "reader")
    db.dispose()
    assert web.upload("/", "b.txt", b"b").status_code == 403
    srv.cli("user", "remove", "acme", "ana")
    r = web.upload("/", "c.txt", b"c")
    assert r.status_code == 401
    r = web.browse("/")
    assert "/unidad/entrar" in r.url
    assert not (srv.files_root("acme") / "c.txt").exists()


def _cfdi(tmp_path):
    import json
    import subprocess
    import sys

    if not MAKE_CFDI.exists():
        pytest.skip(f"{MAKE_CFDI} is not here (it ships beside the repository, in ../shared)")
    out = tmp_path / "good"
    subprocess.run([sys.executable, str(MAKE_CFDI), "--out", str(out), "--seed", "7",
                    "--count", "3", "--types", "ingreso"], check=True, capture_output=True,
                   timeout=300)
    files = json.loads((out / "manifest.json").read_text())["files"]
    entry = next(f for f in files if f["expect"] == "index")
    return (out / entry["file"]).read_bytes()


@pytest.mark.db
def test_a_protected_cfdi_is_refused_on_the_web_as_on_webdav(make_server, tmp_path):
    xml = _cfdi(tmp_path)
    srv, dav, web = setup(make_server)
    web.action("carpeta", nombre="xml")
    assert web.upload("/xml", "f.xml", xml).status_code == 201  # indexed like a PUT
    index = srv.cli("cfdi", "list", "acme", "--all", "--json").stdout
    assert "/xml/f.xml" in index

    r_web = web.action("borrar", carpeta="/xml", ruta="/xml/f.xml")
    r_dav = dav.delete(srv.dav("acme", "xml/f.xml"))
    assert r_web.status_code == 403 and r_dav.status_code == 403
    assert "resguardado hasta" in r_dav.text and "resguardado hasta" in r_web.text
    r_web = web.upload("/xml", "f.xml", b"<otro/>")
    r_dav = dav.put(srv.dav("acme", "xml/f.xml"), data=b"<otro/>")
    assert r_web.status_code == 403 and r_dav.status_code == 403
    assert r_web.json()["message"].strip() == r_dav.text.strip()
    assert (srv.files_root("acme") / "xml" / "f.xml").read_bytes() == xml
    # Deleting its folder keeps it (and says so); renaming within the space is allowed.
    r = web.action("borrar", ruta="/xml")
    assert r.status_code == 200 and "CFDI protegidos" in r.text
    assert (srv.files_root("acme") / "xml" / "f.xml").read_bytes() == xml
    assert web.action("renombrar", carpeta="/xml", ruta="/xml/f.xml",
                      nombre="g.xml").status_code == 200
    assert "/xml/g.xml" in srv.cli("cfdi", "list", "acme", "--all", "--json").stdout


def test_paths_that_leave_the_space_are_refused(make_server, tmp_path):
    srv, dav, web = setup(make_server)
    secret = tmp_path / "secreto.txt"
    secret.write_text("no")
    os.symlink(tmp_path, srv.files_root("acme") / "fuera")
    for path in ("/../../etc", "/a/../../x", "/fuera/secreto.txt", "/fuera"):
        r = web.download(path)
        assert r.status_code in (400, 403, 404), (path, r.status_code)
        assert "no" != r.text
    r = web.browse("/fuera")
    assert "secreto.txt" not in r.text
    for name in ("../x.txt", "a/b.txt", "..", "x\\y.txt"):
        r = web.upload("/", name, b"x")
        assert r.status_code == 400, (name, r.status_code)
    r = web.upload("/../..", "x.txt", b"x")
    assert r.status_code == 400
    r = web.upload("/fuera", "x.txt", b"x")
    assert r.status_code == 403
    # The drive's virtual status file cannot be shadowed by a real one.
    r = web.upload("/", "Espacio disponible - LEEME.txt", b"x")
    d = dav.put(srv.dav("acme", quote("Espacio disponible - LEEME.txt")), data=b"x")
    assert r.status_code == 403 and d.status_code == 403
    assert r.json()["message"].strip() == d.text.strip()
    assert not (tmp_path / "x.txt").exists()
    r = web.action("mover", ruta="/fuera", destino="/")
    assert r.status_code in (400, 403, 409)
    r = web.action("renombrar", ruta="/../secreto.txt", nombre="y.txt")
    assert r.status_code == 400
    assert secret.read_text() == "no"
    r = web.s.get(web.url("descargar"), params={"ruta": "/"}, timeout=30)
    names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
    assert not any("secreto" in n for n in names)  # a ZIP never follows symlinks


def test_one_space_cannot_reach_another(make_server):
    srv, dav, web = setup(make_server)
    srv.create_space("otro", "4G")
    srv.add_user("otro", "oscar", "secreto-oscar-1")
    other = WebDrive(srv, "otro", "oscar", "secreto-oscar-1")
    assert other.upload("/", "privado.txt", b"de otro").status_code == 201
    r = web.s.get(web.url("descargar", "otro"), params={"ruta": "/privado.txt"}, timeout=30)
    assert r.status_code == 200 and "/unidad/entrar" in r.url and b"de otro" not in r.content
    r = web.upload("/", "intruso.txt", b"x", space="otro")
    assert r.status_code == 401
    assert not (srv.files_root("otro") / "intruso.txt").exists()
    # The same credentials do not open another space from the login page either.
    s = requests.Session()
    page = s.get(f"{srv.url}/unidad/entrar", timeout=30).text
    r = s.post(f"{srv.url}/unidad/entrar", data={
        "csrf_token": CSRF_RE.search(page).group(1), "space": "otro", "username": "ana",
        "password": "secreto-ana-1"}, timeout=30)
    assert "incorrectos" in r.text and "/unidad/entrar" in r.url


def test_upload_without_the_csrf_header_is_refused_and_stores_nothing(make_server):
    srv, dav, web = setup(make_server)
    r = web.upload("/", "x.txt", b"hola", csrf=False)
    assert r.status_code == 400
    r = web.s.post(web.url("carpeta"), data={"carpeta": "/", "nombre": "X"}, timeout=30)
    assert r.status_code == 400
    assert not list(srv.files_root("acme").iterdir())


def test_folder_zip_is_streamed_with_the_right_content(make_server):
    srv, dav, web = setup(make_server)
    web.action("carpeta", nombre="Cierre 2025")
    web.action("carpeta", carpeta="/Cierre 2025", nombre="Nómina")
    big = os.urandom(3 * 2**20)
    files = {"Cierre 2025/balanza.txt": b"balanza\n" * 1000,
             "Cierre 2025/Nómina/recibo ñ.pdf": b"%PDF recibo",
             "Cierre 2025/grande.bin": big}
    for path, data in files.items():
        folder, name = ("/" + path).rsplit("/", 1)
        assert web.upload(folder, name, data).status_code == 201
    r = web.download("/Cierre 2025")
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/zip"
    assert "Content-Length" not in r.headers  # streamed while it is built
    assert "filename*=UTF-8''Cierre%202025.zip" in r.headers["Content-Disposition"]
    z = zipfile.ZipFile(io.BytesIO(r.content))
    assert z.testzip() is None
    got = {n: z.read(n) for n in z.namelist() if not n.endswith("/")}
    assert got == files
    assert "Cierre 2025/Nómina/" in z.namelist()


def test_a_large_upload_is_streamed_to_disk_not_held_in_memory(make_server):
    srv, dav, web = setup(make_server)
    web.upload("/", "warm.bin", b"w" * KIB)
    before = srv.rss_kib()
    size = 96 * 2**20

    class Body:
        """A file-like body of known length, produced as it is read."""

        def __init__(self) -> None:
            self.left = size

        def __len__(self) -> int:
            return self.left

        def read(self, n: int = -1) -> bytes:
            n = self.left if n is None or n < 0 else min(n, self.left)
            self.left -= n
            return b"z" * n

    headers = {"X-CSRFToken": web.csrf(), "Content-Type": "application/octet-stream"}
    r = web.s.post(web.url("subir"), params={"carpeta": "/", "nombre": "grande.bin"},
                   data=Body(), headers=headers, timeout=120)
    assert r.status_code == 201, r.text
    assert (srv.files_root("acme") / "grande.bin").stat().st_size == size
    assert srv.rss_kib() - before < 40 * 1024, (before, srv.rss_kib())


def test_an_interrupted_upload_stores_nothing(make_server):
    import socket
    from urllib.parse import urlparse

    srv, dav, web = setup(make_server)
    u = urlparse(srv.url)
    cookie = "; ".join(f"{c.name}={c.value}" for c in web.s.cookies)
    with socket.create_connection((u.hostname, u.port), timeout=30) as sock:
        sock.sendall((f"POST /unidad/acme/subir?carpeta=/&nombre=corte.bin HTTP/1.1\r\n"
                      f"Host: {u.netloc}\r\nCookie: {cookie}\r\nX-CSRFToken: {web.csrf()}\r\n"
                      "Content-Type: application/octet-stream\r\n"
                      f"Content-Length: {10 * 2**20}\r\n\r\n").encode() + b"x" * 2**20)
    # The access-log line is written once the server answered (after its rollback).
    srv.wait_for_log(r"resguardo\.access: \S+ POST /unidad/acme/subir 400 ")
    assert not (srv.files_root("acme") / "corte.bin").exists()
    assert usage(srv) == (0, 0)
    assert not list((srv.data / "spaces" / "acme" / "tmp").iterdir())


# -- share links ------------------------------------------------------------------------


def _share(web, path: str, folder: str = "/", days: str = "7", clave: str = ""):
    r = web.action("enlaces/crear", carpeta=folder, ruta=path, dias=days, clave=clave)
    m = re.search(r'id="enlace">([^<]+)<', r.text)
    return r, (m.group(1) if m else None)


def _db(srv):
    from spaces.core.db import open_database
    from spaces.core.settings_file import load_settings

    return open_database(load_settings(srv.config))


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


# -- trash and versions ------------------------------------------------------------------


@pytest.mark.db
def test_deleted_file_is_restored_from_the_trash_page(make_server):
    srv, dav, web = setup(make_server, role="admin")
    web.action("carpeta", nombre="Clientes")
    assert web.upload("/Clientes", "libro.xlsx", b"libro").status_code == 201
    used = usage(srv)
    assert web.action("borrar", carpeta="/Clientes", ruta="/Clientes/libro.xlsx"
                      ).status_code == 200
    assert usage(srv) == (used[0] - 5, used[1] - 1)  # the trash is outside the plan...
    page = web.s.get(web.url("papelera"), timeout=30).text
    assert "libro.xlsx" in page and "No cuenta en su plan" in page  # ...and says so
    item = re.search(r"/papelera/(\d+)/restaurar", page).group(1)
    # A reader sees the trash but cannot restore.
    srv.add_user("acme", "rita", "secreto-rita-1", role="reader")
    reader = WebDrive(srv, "acme", "rita", "secreto-rita-1")
    rpage = reader.s.get(reader.url("papelera"), timeout=30).text
    assert "libro.xlsx" in rpage and "/restaurar" not in rpage
    reader.page = rpage
    assert reader.action(f"papelera/{item}/restaurar").status_code == 403
    r = web.action(f"papelera/{item}/restaurar")
    assert r.status_code == 200 and "Restaurado en /Clientes/libro.xlsx" in r.text
    assert dav.get(srv.dav("acme", "Clientes/libro.xlsx")).content == b"libro"
    # Emptying is for admins and frees the room.
    web.action("borrar", carpeta="/Clientes", ruta="/Clientes/libro.xlsx")
    web.page = web.s.get(web.url("papelera"), timeout=30).text
    r = web.action("papelera/vaciar")
    assert r.status_code == 200 and "Papelera vaciada" in r.text
    assert usage(srv)[0] == 0 and srv.show("acme")["reserve_used_bytes"] == 0


@pytest.mark.db
def test_a_version_is_listed_downloaded_and_restored(make_server):
    srv, dav, web = setup(make_server)
    assert dav.put(srv.dav("acme", "poliza.txt"), data=b"version uno").status_code == 201
    assert web.upload("/", "poliza.txt", b"version dos").status_code == 200
    page = web.s.get(web.url("versiones"), params={"ruta": "/poliza.txt"}, timeout=30).text
    vid = re.search(r"/versiones/(\d+)/descargar", page).group(1)
    r = web.s.get(web.url(f"versiones/{vid}/descargar"), timeout=30)
    assert r.status_code == 200 and r.content == b"version uno"
    assert "versi%C3%B3n" in r.headers["Content-Disposition"]
    web.page = page
    r = web.action(f"versiones/{vid}/restaurar", ruta="/poliza.txt")
    assert r.status_code == 200 and "Versión restaurada" in r.text
    assert dav.get(srv.dav("acme", "poliza.txt")).content == b"version uno"
    # Restoring kept the replaced content as a version: it can be undone.
    page = web.s.get(web.url("versiones"), params={"ruta": "/poliza.txt"}, timeout=30).text
    vid = re.search(r"/versiones/(\d+)/descargar", page).group(1)
    assert web.s.get(web.url(f"versiones/{vid}/descargar"), timeout=30).content == b"version dos"


@pytest.mark.db
def test_an_admin_frees_space_versions_first_then_the_oldest_trash(make_server):
    """The admin frees reserve room from the Papelera page (versions and trash live
    outside the plan): earlier versions go first, then the oldest trash; current
    files are never touched; others can't."""
    srv, dav, web = setup(make_server, tier="T100K", role="admin",
                          config='[tiers.T100K]\nquota = "100K"\nmax_users = 3\ncfdi_years = 1\n')
    srv.add_user("acme", "edi", "secreto-edi-1", role="editor")
    assert dav.put(srv.dav("acme", "libro.xlsx"), data=b"a" * 30 * KIB).status_code == 201
    assert dav.put(srv.dav("acme", "libro.xlsx"), data=b"b" * 30 * KIB).status_code == 204
    assert dav.put(srv.dav("acme", "viejo.pdf"), data=b"v" * 30 * KIB).status_code == 201
    assert dav.delete(srv.dav("acme", "viejo.pdf")).status_code == 204
    # 60 KiB held in the reserve, outside the plan: the plan has 70 KiB free.
    assert dav.put(srv.dav("acme", "nuevo.pdf"), data=b"n" * 30 * KIB).status_code == 201
    assert srv.show("acme")["reserve_used_bytes"] == 60 * KIB
    page = web.s.get(web.url("papelera"), timeout=30).text
    assert "Liberar espacio" in page and "versiones anteriores" in page
    web.page = page
    editor = WebDrive(srv, "acme", "edi", "secreto-edi-1")
    editor.page = editor.s.get(editor.url("papelera"), timeout=30).text
    assert "Liberar espacio" not in editor.page
    assert editor.action("papelera/liberar", cantidad="20K").status_code == 403
    assert web.action("papelera/liberar", cantidad="veinte").status_code == 400
    r = web.action("papelera/liberar", cantidad="20K")
    assert r.status_code == 200 and "Se liberaron" in r.text, r.text
    # The version went first: the trash item is still there, the file untouched.
    assert srv.cli("versions", "list", "acme", "libro.xlsx").stdout.strip() == ""
    assert "viejo.pdf" in srv.cli("trash", "list", "acme").stdout
    assert dav.get(srv.dav("acme", "libro.xlsx")).content == b"b" * 30 * KIB
    assert srv.show("acme")["reserve_used_bytes"] == 30 * KIB
    assert "sin diferencias" in srv.cli("quota", "recount", "acme").stdout


def test_a_read_only_space_refuses_writes_on_both_and_a_suspended_one_logs_out(make_server):
    from spaces.access import service

    srv, dav, web = setup(make_server)
    assert web.upload("/", "a.txt", b"a").status_code == 201
    db = _db(srv)
    service.set_status(db, "acme", "readonly")
    r_web = web.upload("/", "b.txt", b"b")
    r_dav = dav.put(srv.dav("acme", "b.txt"), data=b"b")
    assert r_web.status_code == 403 and r_dav.status_code == 403
    assert "solo lectura" in r_web.json()["message"] and "solo lectura" in r_dav.text
    assert web.download("/a.txt").content == b"a"  # reading still works
    service.set_status(db, "acme", "suspended")
    db.dispose()
    r = web.browse("/")
    assert "/unidad/entrar" in r.url
    assert web.upload("/", "c.txt", b"c").status_code == 401


@pytest.mark.db
def test_cli_and_api_revocations_end_old_web_sessions_at_once(make_server):
    """Through the real doors an operator uses: `resguardo user passwd` ends the
    user's web sessions (they once kept working for 12 hours and created
    folders), and removing a user through the API ends its portal session (it
    once still exported the space's CFDI ZIP)."""
    srv, dav, web = setup(make_server)
    srv.add_user("acme", "jefa", "secreto-jefa-1", role="admin")
    jefa = requests.Session()
    page = jefa.get(f"{srv.url}/cuenta/entrar-unidad", timeout=30).text
    jefa.post(f"{srv.url}/cuenta/entrar-unidad", data={
        "csrf_token": CSRF_RE.search(page).group(1), "space": "acme", "username": "jefa",
        "password": "secreto-jefa-1"}, timeout=30)
    assert jefa.get(f"{srv.url}/espacios/acme/cfdi?formato=zip", timeout=30).status_code == 200
    csrf = web.csrf()
    srv.cli("user", "passwd", "acme", "ana", "--password-stdin", input="clave-nueva-7\n")
    r = web.s.post(web.url("carpeta"), data={"csrf_token": csrf, "carpeta": "/",
                                             "nombre": "despues"}, timeout=30)
    assert "/unidad/entrar" in r.url or r.status_code == 401
    assert web.upload("/", "despues.txt", b"x").status_code == 401
    assert "/unidad/entrar" in web.browse("/").url
    token = srv.cli("admin", "token", "create", "ops").stdout.strip().splitlines()[-1]
    r = requests.delete(f"{srv.url}/api/v1/spaces/acme/members/jefa", timeout=30,
                        headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 204
    for path in ("/espacios/acme/cfdi?formato=zip", "/espacios/acme/", "/unidad/acme/"):
        r = jefa.get(srv.url + path, timeout=30, allow_redirects=False)
        assert r.status_code in (302, 404), (path, r.status_code)
    assert sorted(p.name for p in srv.files_root("acme").iterdir()) == []
    WebDrive(srv, "acme", "ana", "clave-nueva-7")  # the new password logs in at once


# -- one brute-force pause for every door ------------------------------------------------------

# The first pause lasts a minute: every door is tried within it, however loaded the machine.
PAUSE = """
[auth]
max_failures = 2
failure_window_seconds = 300
block_seconds = 60
max_block_seconds = 60
[portal]
max_login_failures = 2
login_window_seconds = 300
login_block_seconds = 60
max_login_block_seconds = 60
"""


def _member_login(srv, door: str, space: str, user: str, password: str) -> int:
    s = requests.Session()
    page = s.get(f"{srv.url}{door}", timeout=30).text
    r = s.post(f"{srv.url}{door}", data={"csrf_token": CSRF_RE.search(page).group(1),
                                         "space": space, "username": user,
                                         "password": password},
               timeout=30, allow_redirects=False)
    return r.status_code


def _dav(srv, user: str, password: str) -> int:
    return requests.request("PROPFIND", srv.dav("acme", ""), auth=(user, password),
                            headers={"Depth": "0"}, timeout=30).status_code


@pytest.mark.db
def test_a_pause_earned_at_one_door_holds_at_every_door_and_spelling(make_server):
    srv = make_server(PAUSE).start()
    srv.create_space("acme", "4G")
    srv.add_user("acme", "ana", "secreto-ana-1", role="admin")
    srv.add_user("acme", "beto", "secreto-beto-1", role="admin")
    # bad passwords through the drive, spelt three ways: one user
    assert [_dav(srv, u, "mala-clave-1") for u in ("ANA", " ana", "dominio\\Ana")] == [401] * 3
    assert _dav(srv, "ana", "secreto-ana-1") == 401
    for door in ("/unidad/entrar", "/cuenta/entrar-unidad"):
        for space, user in (("acme", "ana"), (" ACME ", "Ana "), ("acme", "acme\\ana")):
            assert _member_login(srv, door, space, user, "secreto-ana-1") == 429, (door, user)
    assert _dav(srv, "beto", "secreto-beto-1") == 207  # another user is not paused
    # and the other way round: bad passwords on the web pause the drive
    for door in ("/unidad/entrar", "/cuenta/entrar-unidad"):
        assert _member_login(srv, door, "acme", " BETO", "mala-clave-1") == 200
    assert _dav(srv, "beto", "secreto-beto-1") == 401
    assert _member_login(srv, "/unidad/entrar", "acme", "beto", "secreto-beto-1") == 429


@pytest.mark.db
def test_the_pause_holds_across_separate_drive_and_portal_processes(make_server):
    """The drive and the portal as separate processes (or nodes) on one database:
    failures counted by either pause both."""
    drive = make_server(PAUSE)
    drive.create_space("acme", "4G")
    drive.add_user("acme", "ana", "secreto-ana-1", role="admin")
    drive.serve_args = ["--only", "drive"]
    portal = make_server(PAUSE, share_with=drive)
    from portal_helpers import free_port

    portal.serve_args = ["--only", "portal", "--port", str(free_port())]
    drive.start()
    portal.start()
    assert [_dav(drive, "ana", "mala-clave-1") for _ in range(3)] == [401] * 3
    assert _member_login(portal, "/unidad/entrar", "acme", "ana", "secreto-ana-1") == 429


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
    from spaces.core.settings_file import load_settings
    from spaces.files import trash
    from spaces.files.storage import SpaceFiles

    db = _db(srv)
    info = service.get_space(db, "acme")
    files = SpaceFiles(load_settings(srv.config), db, info.id, info.name)
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
