"""What Windows Explorer (the WebDAV Mini-Redirector) needs from the drive, proved
against the real server with the request sequences it sends: the anonymous probes of ``/``
and ``/dav/``, folder URLs without their trailing slash, percent-encoded names, and the
Win32 properties PROPPATCHed after a copy (PUT 0 bytes, LOCK, PROPPATCH, PUT, PROPPATCH,
UNLOCK; see mar10/wsgidav#112 for a trace)."""

from __future__ import annotations

import calendar
import email.utils
import os
import re
from urllib.parse import quote, unquote, urlsplit

import pytest
import requests
from windows_helpers import (
    OLD_DATE,
    WIN_UA,
    D,
    held,
    live,
    lock,
    lock_tokens,
    multistatus,
    prop_text,
    propfind,
    stored,
    usage,
    win32_proppatch_body,
    windows_session,
)

MS = "{urn:schemas-microsoft-com:}"


WIN32_PROPS = ("Win32CreationTime", "Win32LastAccessTime", "Win32LastModifiedTime",
               "Win32FileAttributes")


# RFC 3986 path characters: unreserved, sub-delims, ':', '@', '/' and %XX escapes.
_HREF_OK = re.compile(r"^(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*$")


# -- helpers ---------------------------------------------------------------------------

def assert_win32_accepted(r: requests.Response) -> None:
    (props,) = multistatus(r).values()
    for name in WIN32_PROPS:
        status, _ = props[MS + name]
        assert " 200 " in status, (name, status)


def http_date_to_epoch(text: str) -> int:
    parsed = email.utils.parsedate_tz(text)
    assert parsed is not None, text
    return calendar.timegm(parsed[:9])  # type: ignore[arg-type]


# -- the probes Windows sends before it asks for a password ------------------------

@pytest.mark.parametrize("path", ["/", "/dav/", "/dav"])
def test_anonymous_options_and_propfind_answer_like_a_dav_server(server, path):
    anon = requests.Session()
    anon.headers["User-Agent"] = WIN_UA
    r = anon.options(server.url + path, allow_redirects=False)
    assert r.status_code == 200, r.text
    classes = {c.strip() for c in r.headers.get("DAV", "").split(",")}
    assert {"1", "2"} <= classes, r.headers.get("DAV")
    assert r.headers.get("MS-Author-Via") == "DAV"
    assert "PROPFIND" in r.headers.get("Allow", "")

    r = anon.request("PROPFIND", server.url + path, headers={"Depth": "0"},
                     allow_redirects=False)
    listing = multistatus(r)
    assert len(listing) == 1
    (props,) = listing.values()
    _, rtype = props[f"{D}resourcetype"]
    assert rtype.find(f"{D}collection") is not None


@pytest.mark.parametrize("path", ["/", "/dav/"])
def test_anonymous_propfind_depth_1_never_lists_the_spaces(server, path):
    server.create_space("acme", "4G")
    server.create_space("zeta-contadores", "4G")
    anon = requests.Session()
    r = anon.request("PROPFIND", server.url + path, headers={"Depth": "1"})
    listing = multistatus(r)
    assert [urlsplit(h).path for h in listing] == [path]
    assert "acme" not in r.text and "zeta" not in r.text


def test_a_space_url_asks_windows_for_basic_credentials(space):
    srv, _ = space
    anon = requests.Session()
    anon.headers["User-Agent"] = WIN_UA
    for url in (srv.dav("acme"), srv.url + "/dav/acme"):
        r = anon.request("PROPFIND", url, headers={"Depth": "0"}, allow_redirects=False)
        assert r.status_code == 401
        assert r.headers.get("WWW-Authenticate", "").lower().startswith("basic ")


# -- folder URLs without their trailing slash -------------------------------------

def test_folder_urls_without_trailing_slash_are_answered_directly_never_redirected(space):
    srv, _ = space
    s = windows_session()
    assert s.request("MKCOL", srv.dav("acme", "sub/")).status_code == 201
    assert s.put(srv.dav("acme", "sub/nota.txt"), data=b"hola").status_code == 201
    base = srv.url + "/dav/acme"

    for bare, href in ((base, "/dav/acme/"), (base + "/sub", "/dav/acme/sub/")):
        r = s.request("PROPFIND", bare, headers={"Depth": "1"}, allow_redirects=False)
        assert r.status_code == 207, (bare, r.status_code, r.headers.get("Location"))
        hrefs = [urlsplit(h).path for h in multistatus(r)]
        assert hrefs[0] == href
        # Members are joined under the folder, not glued to its name.
        assert all(h == href or h.startswith(href) for h in hrefs)
    assert "/dav/acme/sub/nota.txt" in [urlsplit(h).path for h in propfind(s, base + "/sub")]

    for bare in (base, base + "/sub"):
        r = s.get(bare, allow_redirects=False)
        assert not 300 <= r.status_code < 400 and "Location" not in r.headers, r.status_code
        assert r.status_code < 500
        # Same answer as the canonical form: the missing slash changes nothing.
        assert r.status_code == s.get(bare + "/", allow_redirects=False).status_code

    # Explorer renames and deletes folders by their bare URL too.
    r = s.request("MOVE", base + "/sub", headers={"Destination": base + "/otra"},
                  allow_redirects=False)
    assert r.status_code == 201, r.text
    assert s.get(srv.dav("acme", "otra/nota.txt")).content == b"hola"
    assert s.delete(base + "/otra", allow_redirects=False).status_code == 204
    # Gone from the drive and from the plan; in the trash (restorable, in the reserve).
    assert live(srv) == (0, 0) and usage(srv) == stored(srv) == (0, 0)
    assert held(srv) == (4, 2)


# -- names with spaces, accents and URL-reserved characters -----------------------

NAMES = ["informe anual.txt", "Año contable ñandú.txt", "café á é.txt", "factura #12.xml",
         "100% listo.txt", "Pérez & Hijos.txt", "a+b;c=d@e.txt"]


def test_hrefs_are_percent_encoded_and_round_trip_for_unusual_names(space):
    srv, _ = space
    s = windows_session()
    folder = "Año fiscal #3 & 100%"
    assert s.request("MKCOL", srv.dav("acme", quote(folder) + "/")).status_code == 201
    for name in NAMES:
        r = s.put(srv.dav("acme", f"{quote(folder)}/{quote(name)}"), data=name.encode())
        assert r.status_code == 201, (name, r.status_code, r.text)

    body = ('<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:displayname/>'
            "<D:resourcetype/></D:prop></D:propfind>")
    for url, prefix in ((srv.dav("acme"), "/dav/acme/"),
                        (srv.dav("acme", quote(folder) + "/"), f"/dav/acme/{folder}/")):
        listing = propfind(s, url, "1", body)
        for href, props in listing.items():
            path = urlsplit(href).path
            assert _HREF_OK.match(path), f"href not percent-encoded: {href!r}"
            decoded = unquote(path)
            assert decoded.startswith(prefix)
            name = decoded[len(prefix):].rstrip("/")
            if name:
                assert prop_text(props, f"{D}displayname") == name
        names = {unquote(urlsplit(h).path)[len(prefix):].rstrip("/") for h in listing}
        if prefix == "/dav/acme/":
            assert folder in names
        else:
            assert names - {""} == set(NAMES)

    # Round trip: the href itself (as Explorer reuses it) and the decoded name re-encoded.
    listing = propfind(s, srv.dav("acme", quote(folder) + "/"), "1")
    for href in listing:
        path = urlsplit(href).path
        name = unquote(path).rsplit("/", 1)[1]
        if not name:
            continue
        assert s.get(srv.url + path).content == name.encode(), href
        assert s.get(srv.dav("acme", f"{quote(folder)}/{quote(name)}")).content == name.encode()
    on_disk = {p.name for p in (srv.files_root("acme") / folder).iterdir()}
    assert on_disk == set(NAMES)

    # Renaming (MOVE) to such a name, with a percent-encoded Destination.
    new = "Copia de factura #12 (100% ñ & á).xml"
    r = s.request("MOVE", srv.dav("acme", f"{quote(folder)}/{quote('factura #12.xml')}"),
                  headers={"Destination": srv.dav("acme", f"{quote(folder)}/{quote(new)}")})
    assert r.status_code == 201, r.text
    assert s.get(srv.dav("acme", f"{quote(folder)}/{quote(new)}")).content == b"factura #12.xml"
    assert (srv.files_root("acme") / folder / new).is_file()


# -- the Win32 properties Windows PROPPATCHes -------------------------------------

@pytest.mark.db
@pytest.mark.parametrize("kind", ["file", "folder"])
def test_win32_properties_are_accepted_and_set_the_last_modified_time(space, kind):
    srv, _ = space
    s = windows_session()
    if kind == "file":
        url = srv.dav("acme", quote("Estado de cuenta 2017.pdf"))
        assert s.put(url, data=b"%PDF-1.4 ...").status_code == 201
    else:
        url = srv.dav("acme", quote("Expedientes 2017") + "/")
        assert s.request("MKCOL", url).status_code == 201

    r = s.request("PROPPATCH", url, data=win32_proppatch_body(),
                  headers={"Content-Type": 'text/xml; charset="utf-8"'})
    assert_win32_accepted(r)

    (props,) = propfind(s, url, "0").values()
    assert prop_text(props, f"{D}getlastmodified") == OLD_DATE
    name = "Estado de cuenta 2017.pdf" if kind == "file" else "Expedientes 2017"
    mtime = os.stat(srv.files_root("acme") / name).st_mtime
    assert int(mtime) == http_date_to_epoch(OLD_DATE)


# -- Windows' create sequence -------------------------------------------------------

@pytest.mark.db
def test_windows_create_sequence_stores_the_content_and_counts_one_file(space):
    srv, _ = space
    s = windows_session()
    name = "Póliza de seguro.docx"
    url = srv.dav("acme", quote(name))
    content = os.urandom(150_000)

    assert s.put(url, data=b"").status_code == 201
    token = lock(s, url)
    if_header = {"If": f"({token})"}
    r = s.request("PROPPATCH", url, data=win32_proppatch_body(),
                  headers={**if_header, "Content-Type": 'text/xml; charset="utf-8"'})
    assert_win32_accepted(r)
    assert s.head(url).status_code == 200

    # While locked, a write without the token is refused and changes nothing.
    other = windows_session()
    assert other.put(url, data=b"intruso").status_code == 423
    assert s.get(url).content == b""

    r = s.put(url, data=content, headers=if_header)
    assert r.status_code == 204, r.text
    # Windows sends the source's times again once the content is there.
    r = s.request("PROPPATCH", url, data=win32_proppatch_body(),
                  headers={**if_header, "Content-Type": 'text/xml; charset="utf-8"'})
    assert_win32_accepted(r)
    assert other.put(url, data=b"intruso").status_code == 423
    assert s.request("UNLOCK", url, headers={"Lock-Token": token}).status_code == 204

    assert s.get(url).content == content
    (props,) = propfind(s, url, "0").values()
    assert int(prop_text(props, f"{D}getcontentlength")) == len(content)
    assert prop_text(props, f"{D}getlastmodified") == OLD_DATE
    assert lock_tokens(s, url) == []
    assert usage(srv) == (len(content), 1) == stored(srv)
    assert list((srv.data / "spaces" / "acme" / "tmp").iterdir()) == []


@pytest.mark.db
def test_a_locked_document_cannot_be_deleted_or_renamed_without_its_token(space):
    """Office keeps a LOCK on an open document: a colleague's Explorer must not
    delete or rename it from under them (423); the holder of the token can."""
    srv, _ = space
    s, colleague = windows_session(), windows_session()
    url = srv.dav("acme", quote("Balance general.xlsx"))
    assert s.put(url, data=b"cifras").status_code == 201
    token = lock(s, url)

    assert colleague.delete(url).status_code == 423
    r = colleague.request("MOVE", url, headers={"Destination": srv.dav("acme", "otro.xlsx")})
    assert r.status_code == 423
    assert s.get(url).content == b"cifras"
    assert usage(srv) == stored(srv) == (6, 1)

    assert s.delete(url, headers={"If": f"({token})"}).status_code == 204
    assert live(srv) == (0, 0) and usage(srv) == stored(srv) == (0, 0)
    assert held(srv) == (6, 1)  # in the trash, outside the plan
    # The lock went with the file: a new one under that name is free to write.
    assert colleague.put(url, data=b"nuevo").status_code == 201
    assert lock_tokens(s, url) == []
