"""The web drive's files against the real server: uploads (streamed to disk, nothing
stored when interrupted), downloads with the real name, ranges and the drive's ETag,
folders renamed, moved and deleted through the drive, and ZIP downloads."""

from __future__ import annotations

import io
import os
import re
import zipfile
from urllib.parse import quote

import pytest
import requests
from web_drive_helpers import KIB, _share, setup, usage


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
