"""Helpers for the web drive tests: a logged-in web drive client (WebDrive) beside
the WebDAV drive of the real server, a space set up for it, its usage and its database."""

from __future__ import annotations

import re

import requests

CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
UPLOAD_CSRF_RE = re.compile(r'data-csrf="([^"]+)"')


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


def _share(web, path: str, folder: str = "/", days: str = "7", clave: str = ""):
    r = web.action("enlaces/crear", carpeta=folder, ruta=path, dias=days, clave=clave)
    m = re.search(r'id="enlace">([^<]+)<', r.text)
    return r, (m.group(1) if m else None)


def _db(srv):
    from spaces.core.db import open_database
    from spaces.core.settings_file import load_settings

    return open_database(load_settings(srv.config))
