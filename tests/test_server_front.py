"""The server's front door against anonymous clients, with real sockets against
the real server: no response names the software or shows the server's clock."""

from __future__ import annotations

import base64
import http.client
import re
from urllib.parse import urlparse

import pytest

USER, PASSWORD = "ana", "secreto-ana-1"
AUTH = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

#: What gives the software away, or the server's own clock in a body
#: (WsgiDAV printed "WsgiDAV/4.4.0 - 2026-12-04 13:48:36.056220").
LEAKS = re.compile(rb"wsgidav|cheroot|werkzeug|python/|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+",
                   re.IGNORECASE)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    from conftest import Server

    srv = Server(tmp_path_factory.mktemp("front")).start()
    srv.create_space("acme", "4G")
    srv.add_user("acme", USER, PASSWORD, "admin")
    yield srv
    srv.close()


def request(srv, method: str, path: str, body: bytes = b"",
            headers: dict[str, str] | None = None) -> tuple[int, list[tuple[str, str]], bytes]:
    u = urlparse(srv.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=20)
    conn.request(method, path, body=body or None, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, r.getheaders(), data


def test_no_answer_names_the_server_software_or_shows_its_clock(live):
    """Successes included: WsgiDAV answered a MKCOL, PUT, COPY or MOVE with an
    HTML page naming its version and the server's local time."""
    a = {"Authorization": AUTH}
    dest = {"Destination": f"{live.url}/dav/acme/otra/", **a}
    calls = [
        ("MKCOL", "/dav/acme/carpeta/", b"", a),
        ("MKCOL", "/dav/acme/carpeta/", b"", a),
        ("PUT", "/dav/acme/carpeta/a.txt", b"hola", a),
        ("PUT", "/dav/acme/carpeta/a.txt", b"hola otra vez", a),
        ("COPY", "/dav/acme/carpeta/", b"", dest),
        ("MOVE", "/dav/acme/otra/", b"", {**a, "Destination": f"{live.url}/dav/acme/movida/"}),
        ("PROPFIND", "/dav/acme/", b"", {**a, "Depth": "1"}),
        ("PROPPATCH", "/dav/acme/carpeta/a.txt",
         b'<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:z"><D:set>'
         b"<D:prop><Z:p>v</Z:p></D:prop></D:set></D:propertyupdate>", a),
        ("LOCK", "/dav/acme/carpeta/a.txt",
         b'<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/>'
         b"</D:lockscope><D:locktype><D:write/></D:locktype></D:lockinfo>", a),
        ("DELETE", "/dav/acme/movida/", b"", a),
        ("DELETE", "/dav/acme/no-existe", b"", a),
        ("GET", "/dav/acme/no-existe", b"", a),
        ("GET", "/dav/acme/", b"", a),
        ("OPTIONS", "/", b"", {}),
        ("PROPFIND", "/dav/acme/", b"", {}),
        ("BREW", "/dav/acme/", b"", a),
        ("GET", "/no-existe", b"", {}),
        ("GET", "/", b"", {}),
        ("GET", "/healthz", b"", {}),
    ]
    for method, path, body, headers in calls:
        status, hdrs, data = request(live, method, path, body, headers)
        assert status < 500, (method, path, status, data[:300])
        assert not LEAKS.search(data), (method, path, status, data[:500])
        for name, value in hdrs:
            assert not LEAKS.search(value.encode()), (method, path, name, value)
            if name.lower() == "server":
                assert value == "Resguardo", value
