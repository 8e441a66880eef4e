"""The portal's own attack surface, through Flask's test client on a real
database with a real SMTP server: redirects, sessions and their revocation,
authority re-checked on every request, anonymous enumeration, CSV exports,
reserved names and RFC ownership."""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

import pytest
from test_portal import PASSWORD, Portal, portal, sign_up, smtp  # noqa: F401 - fixtures

HOST = "localhost"  # the test client's host

#: What an attacker puts in ``next``: each must never send the browser elsewhere.
HOSTILE_NEXT = [
    "//evil.example", "///evil.example", "/%09/evil.example", "/\t/evil.example",
    "/%0d/evil.example", "/%0a/evil.example", "/%0d%0aSet-Cookie:x=1", "/\\evil.example",
    "\\\\evil.example", "/\\/evil.example", "https://evil.example/", "http:evil.example",
    "javascript:alert(1)", " //evil.example", "%2F%2Fevil.example", "/%2F/evil.example",
    "/%E3%80%80/evil.example", "/%00/evil.example", "/%C2%85/evil.example", "%09//evil.example",
    "/.//evil.example", "/%5C%5Cevil.example",
]


def browser_target(location: str) -> str:
    """Where a browser goes for ``location`` (WHATWG URL parsing: tab and newline
    removed anywhere, C0 controls and spaces trimmed, backslash is a slash)."""
    loc = location.replace("\t", "").replace("\n", "").replace("\r", "")
    loc = loc.strip("".join(chr(c) for c in range(0x21))).replace("\\", "/")
    return urlsplit(urljoin(f"http://{HOST}/cuenta/", loc)).netloc


@pytest.mark.parametrize("door", ["/idioma/en", "/idioma/es", "/cuenta/entrar",
                                  "/unidad/entrar"])
def test_next_never_leaves_the_site_and_never_fails(portal, door):  # noqa: F811
    b = sign_up(portal)
    if door == "/unidad/entrar":
        b.post("/espacio-gratis", {}, form_page="/")
        from spaces import service

        service.set_password(portal.db, "despacho", "despacho", "clave-unidad-1")
    for raw in HOSTILE_NEXT:
        path = f"{door}?next={raw}"
        if door == "/cuenta/entrar":
            r = b.post(path, {"login": "despacho", "password": PASSWORD},
                       form_page="/cuenta/entrar", follow=False)
        elif door == "/unidad/entrar":
            r = b.post(path, {"space": "despacho", "username": "despacho",
                              "password": "clave-unidad-1"}, form_page="/unidad/entrar",
                       follow=False)
        else:
            r = b.c.get(path)
        assert r.status_code in (302, 303), (raw, r.status_code)
        location = r.headers["Location"]
        assert browser_target(location) == HOST, (raw, location)
    # a real local target still works
    r = b.c.get("/idioma/es?next=/planes%3Ftier%3D4G")
    assert r.headers["Location"] in ("/planes?tier=4G", f"http://{HOST}/planes?tier=4G")
