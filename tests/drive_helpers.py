"""Helpers for the tests of access on the live drive: requests sent byte for byte
(:func:`raw`, for what ``requests`` would normalise), a space's state on disk and in the
database, two spaces side by side, a LOCK, and the users and bodies they use."""

from __future__ import annotations

import base64
import http.client
import os
import stat
from pathlib import Path
from urllib.parse import urlparse

#: Generous throttle so that the 401s these tests provoke come from the rule
#: under test, never from the bad-password brake.
NO_THROTTLE = "[auth]\nmax_failures = 10000\ncache_seconds = 3600\n"

SECRET_B = b"SECRETO DE BETA: no debe salir de su espacio\n"
ANA = ("ana", "secreto-ana-1")
BETO = ("beto", "secreto-beto-1")

LOCK_BODY = ('<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope>'
             '<D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>'
             '<D:owner>intruso</D:owner></D:lockinfo>')
PROPPATCH_BODY = ('<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" '
                  'xmlns:Z="urn:resguardo:test"><D:set><D:prop><Z:nota>alterado</Z:nota>'
                  '</D:prop></D:set></D:propertyupdate>')


class Reply:
    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def __repr__(self) -> str:
        return f"<{self.status} {self.body[:120]!r}>"


def raw(srv, method: str, path: str, *, auth: tuple[str, str] | None = None,
        headers: dict[str, str] | None = None, body: bytes | str | None = None,
        timeout: float = 30) -> Reply:
    """One request on a fresh connection, the path sent exactly as given. The
    whole body must arrive (a response that promises more bytes than it sends
    times out)."""
    u = urlparse(srv.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        h = dict(headers or {})
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            h["Authorization"] = f"Basic {token}"
        data = body.encode() if isinstance(body, str) else body
        if data is not None:
            h["Content-Length"] = str(len(data))
            h.setdefault("Content-Type", "application/xml" if data[:1] == b"<"
                         else "application/octet-stream")
        for k, v in h.items():
            conn.putheader(k, v)
        conn.endheaders(data)
        r = conn.getresponse()
        return Reply(r.status, r.getheaders(), r.read())
    finally:
        conn.close()


def tree(root: Path) -> dict[str, tuple[object, ...]]:
    """Everything under ``root`` (symlinks as links, never followed)."""
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = os.lstat(p)
            rel = str(p.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir",)
            else:
                out[rel] = ("file", p.read_bytes(), st.st_mtime_ns)
    return out


def state(srv, space: str) -> tuple[object, ...]:
    """What a space holds: its files on disk and its counters in the database."""
    d = srv.show(space)
    return (tree(srv.files_root(space)),
            {k: d[k] for k in ("used_bytes", "used_files", "users", "tier", "status")})


def two_spaces(make_server, extra: str = NO_THROTTLE):
    """A server with space 'alfa' (ana) and space 'beta' (beto), each with files."""
    srv = make_server(extra).start()
    srv.create_space("alfa", "4G")
    srv.create_space("beta", "4G")
    srv.add_user("alfa", *ANA, role="admin")
    srv.add_user("beta", *BETO, role="admin")
    assert raw(srv, "PUT", "/dav/alfa/f.txt", auth=ANA, body=b"de alfa\n").status == 201
    assert raw(srv, "MKCOL", "/dav/alfa/carpeta/", auth=ANA).status == 201
    assert raw(srv, "PUT", "/dav/alfa/carpeta/x.txt", auth=ANA, body=b"x\n").status == 201
    assert raw(srv, "PUT", "/dav/beta/secreto.txt", auth=BETO, body=SECRET_B).status == 201
    assert raw(srv, "MKCOL", "/dav/beta/docs/", auth=BETO).status == 201
    assert raw(srv, "PUT", "/dav/beta/docs/d.txt", auth=BETO, body=b"d\n").status == 201
    return srv


def lock(srv, space: str, path: str, who: tuple[str, str]) -> str:
    r = raw(srv, "LOCK", f"/dav/{space}/{path}", auth=who, body=LOCK_BODY,
            headers={"Timeout": "Second-600"})
    assert r.status == 200, r
    token = r.header("Lock-Token")
    assert token
    return token
