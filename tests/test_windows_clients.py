"""What Windows Explorer (the WebDAV Mini-Redirector) and Microsoft Office need
from the drive, proved against the real server.

The request sequences are the ones those clients send: the anonymous probes of
``/`` and ``/dav/``, folder URLs without their trailing slash, percent-encoded
names, the Win32 properties PROPPATCHed after a copy (PUT 0 bytes, LOCK,
PROPPATCH, PUT, PROPPATCH, UNLOCK; see mar10/wsgidav#112 for a trace), Office's
save-by-rename, and the status file Explorer shows instead of RFC 4331 quota.
"""

from __future__ import annotations

import calendar
import email.utils
import os
import re
import xml.etree.ElementTree as ET
from urllib.parse import quote, unquote, urlsplit

import pytest
import requests

from spaces.access.statusfile import READ_ONLY_MESSAGE, STATUS_FILE_NAME
from spaces.core import formats

WIN_UA = "Microsoft-WebDAV-MiniRedir/10.0.19045"
D = "{DAV:}"
MS = "{urn:schemas-microsoft-com:}"
OLD_DATE = "Wed, 15 Mar 2017 10:20:30 GMT"  # years in the past, as Windows sends it
WIN32_PROPS = ("Win32CreationTime", "Win32LastAccessTime", "Win32LastModifiedTime",
               "Win32FileAttributes")
LOCK_BODY = ('<?xml version="1.0" encoding="utf-8" ?><D:lockinfo xmlns:D="DAV:">'
             "<D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>"
             "<D:owner><D:href>OFICINA\\ana</D:href></D:owner></D:lockinfo>")
# RFC 3986 path characters: unreserved, sub-delims, ':', '@', '/' and %XX escapes.
_HREF_OK = re.compile(r"^(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*$")


# -- helpers ---------------------------------------------------------------------------

def windows_session(user: str = "ana", password: str = "secreto-ana-1") -> requests.Session:
    s = requests.Session()
    s.auth = (user, password)
    s.headers["User-Agent"] = WIN_UA
    return s


def multistatus(r: requests.Response) -> dict[str, dict[str, tuple[str, ET.Element]]]:
    """href -> {property tag: (status line, element)} of a 207 answer."""
    assert r.status_code == 207, (r.status_code, r.text)
    out: dict[str, dict[str, tuple[str, ET.Element]]] = {}
    for resp in ET.fromstring(r.content).iter(f"{D}response"):
        href = resp.findtext(f"{D}href") or ""
        props: dict[str, tuple[str, ET.Element]] = {}
        for ps in resp.iter(f"{D}propstat"):
            status = ps.findtext(f"{D}status") or ""
            for prop in ps.find(f"{D}prop") or []:
                props[prop.tag] = (status, prop)
        out[href] = props
    return out


def propfind(s: requests.Session, url: str, depth: str = "1", body: str | None = None
             ) -> dict[str, dict[str, tuple[str, ET.Element]]]:
    headers = {"Depth": depth}
    if body:
        headers["Content-Type"] = 'text/xml; charset="utf-8"'
    return multistatus(s.request("PROPFIND", url, data=body, headers=headers,
                                 allow_redirects=False))


def prop_text(props: dict[str, tuple[str, ET.Element]], tag: str) -> str:
    status, el = props[tag]
    assert " 200 " in status, (tag, status)
    return el.text or ""


def win32_proppatch_body(when: str = OLD_DATE) -> str:
    return ('<?xml version="1.0" encoding="utf-8" ?>'
            '<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:schemas-microsoft-com:">'
            "<D:set><D:prop>"
            f"<Z:Win32CreationTime>{when}</Z:Win32CreationTime>"
            f"<Z:Win32LastAccessTime>{when}</Z:Win32LastAccessTime>"
            f"<Z:Win32LastModifiedTime>{when}</Z:Win32LastModifiedTime>"
            "<Z:Win32FileAttributes>00000020</Z:Win32FileAttributes>"
            "</D:prop></D:set></D:propertyupdate>")


def assert_win32_accepted(r: requests.Response) -> None:
    (props,) = multistatus(r).values()
    for name in WIN32_PROPS:
        status, _ = props[MS + name]
        assert " 200 " in status, (name, status)


def lock(s: requests.Session, url: str) -> str:
    r = s.request("LOCK", url, data=LOCK_BODY,
                  headers={"Timeout": "Second-3600", "Content-Type": 'text/xml; charset="utf-8"'})
    assert r.status_code in (200, 201), (r.status_code, r.text)
    token = r.headers["Lock-Token"]
    assert token.startswith("<opaquelocktoken:")
    return token


def lock_tokens(s: requests.Session, url: str) -> list[str]:
    body = ('<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:lockdiscovery/>'
            "</D:prop></D:propfind>")
    (props,) = propfind(s, url, "0", body).values()
    _, el = props[f"{D}lockdiscovery"]
    return [(h.text or "").strip() for h in el.iter(f"{D}href")
            if (h.text or "").startswith("opaquelocktoken:")]


def usage(srv, space: str = "acme") -> tuple[int, int]:  # type: ignore[no-untyped-def]
    d = srv.show(space)
    return int(d["used_bytes"]), int(d["used_files"])


def live(srv, space: str = "acme") -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """(bytes, files and folders) actually under the space's files root."""
    entries = list(srv.files_root(space).rglob("*"))
    return sum(p.stat().st_size for p in entries if p.is_file()), len(entries)


def stored(srv, space: str = "acme") -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """(bytes, files and folders) the plan counts and its usage must equal: the
    current files (the trash and earlier versions live in the reserve)."""
    return live(srv, space)


def held(srv, space: str = "acme") -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """(bytes, entries) in the space's reserve: its trash and earlier versions,
    on disk, which the reserve counters must equal."""
    d = srv.show(space)
    entries = [p for area in ("trash", "versions")
               for p in (srv.data / "spaces" / space / area).rglob("*")]
    on_disk = sum(p.stat().st_size for p in entries if p.is_file()), len(entries)
    assert (int(d["reserve_used_bytes"]), int(d["reserve_used_files"])) == on_disk
    return on_disk


def http_date_to_epoch(text: str) -> int:
    parsed = email.utils.parsedate_tz(text)
    assert parsed is not None, text
    return calendar.timegm(parsed[:9])  # type: ignore[arg-type]


# -- 1. the probes Windows sends before it asks for a password ------------------------

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


# -- 2. folder URLs without their trailing slash -------------------------------------

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


# -- 3. names with spaces, accents and URL-reserved characters -----------------------

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


# -- 4. the Win32 properties Windows PROPPATCHes -------------------------------------

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


# -- 5. Windows' create sequence -------------------------------------------------------

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


# -- 6. Office's save-by-rename -------------------------------------------------------

def _listed_names(s: requests.Session, url: str) -> set[str]:
    return {unquote(urlsplit(h).path).rstrip("/").rsplit("/", 1)[1]
            for h in propfind(s, url, "1")} - {"acme"}


@pytest.mark.db
def test_word_save_by_rename_replaces_the_document_and_leaves_no_temporaries(space):
    srv, _ = space
    s = requests.Session()
    s.auth = ("ana", "secreto-ana-1")
    s.headers["User-Agent"] = WIN_UA
    d = lambda p: srv.dav("acme", quote(p))  # noqa: E731
    old, new = b"version 1 " * 3000, b"version 2, con mas texto " * 5000
    assert s.put(d("doc.docx"), data=old).status_code == 201

    assert s.put(d("~WRL0001.tmp"), data=new).status_code == 201
    r = s.request("MOVE", d("doc.docx"), headers={"Destination": d("~WRL0002.tmp")})
    assert r.status_code == 201, r.text
    r = s.request("MOVE", d("~WRL0001.tmp"), headers={"Destination": d("doc.docx")})
    assert r.status_code == 201, r.text
    assert s.delete(d("~WRL0002.tmp")).status_code == 204

    assert s.get(d("doc.docx")).content == new
    assert _listed_names(s, srv.dav("acme")) == {STATUS_FILE_NAME, "doc.docx"}
    assert {p.name for p in srv.files_root("acme").iterdir()} == {"doc.docx"}
    # The old document is kept as a version of doc.docx (in the reserve), not as
    # an orphan: the plan counts the new document only.
    assert live(srv) == (len(new), 1)
    assert usage(srv) == stored(srv) == (len(new), 1)
    assert held(srv) == (len(old), 1)


@pytest.mark.db
def test_excel_save_by_rename_over_the_existing_document_counts_it_once(space):
    srv, _ = space
    s = windows_session()
    d = lambda p: srv.dav("acme", quote(p))  # noqa: E731
    assert s.request("MKCOL", d("Nómina") + "/").status_code == 201
    old, new = b"A" * 70_000, b"B" * 45_000
    assert s.put(d("Nómina/libro.xlsx"), data=old).status_code == 201
    assert usage(srv) == stored(srv) == (len(old), 2)

    assert s.put(d("Nómina/3A2B1C00"), data=new).status_code == 201
    r = s.request("MOVE", d("Nómina/3A2B1C00"),
                  headers={"Destination": d("Nómina/libro.xlsx"), "Overwrite": "T"})
    assert r.status_code == 204, r.text

    assert s.get(d("Nómina/libro.xlsx")).content == new
    assert _listed_names(s, d("Nómina") + "/") == {"Nómina", "libro.xlsx"}
    assert {p.name for p in (srv.files_root("acme") / "Nómina").iterdir()} == {"libro.xlsx"}
    assert live(srv) == (len(new), 2)
    assert usage(srv) == stored(srv) == (len(new), 2)
    assert held(srv) == (len(old), 1)  # the old one as a version


@pytest.mark.db
def test_save_by_rename_of_a_locked_document_leaves_no_lock_at_its_name(space):
    """Word holds a LOCK on the open document and renames it away with the token;
    the lock must not stay behind at ``doc.docx`` (RFC 4918: locks never move
    with a MOVE), or the new version would be locked by a token nobody holds and
    the next person to open it would get it read-only."""
    srv, _ = space
    s = windows_session()
    d = lambda p: srv.dav("acme", quote(p))  # noqa: E731
    assert s.put(d("doc.docx"), data=b"v1").status_code == 201
    token = lock(s, d("doc.docx"))

    assert s.put(d("~WRL0001.tmp"), data=b"v2 nueva").status_code == 201
    r = s.request("MOVE", d("doc.docx"),
                  headers={"Destination": d("~WRL0002.tmp"), "If": f"({token})"})
    assert r.status_code == 201, r.text
    assert lock_tokens(s, d("~WRL0002.tmp")) == []  # the lock did not travel
    r = s.request("MOVE", d("~WRL0001.tmp"), headers={"Destination": d("doc.docx")})
    assert r.status_code == 201, r.text
    assert s.delete(d("~WRL0002.tmp")).status_code == 204

    assert lock_tokens(s, d("doc.docx")) == []
    colleague = windows_session()
    assert colleague.put(d("doc.docx"), data=b"v3 de otra persona").status_code == 204
    colleague_token = lock(colleague, d("doc.docx"))
    assert colleague.request("UNLOCK", d("doc.docx"),
                             headers={"Lock-Token": colleague_token}).status_code == 204
    assert live(srv) == (len(b"v3 de otra persona"), 1)
    # v1 (save-by-rename) and "v2 nueva" (the colleague's overwrite) are versions.
    assert usage(srv) == stored(srv) == (len(b"v3 de otra persona"), 1)
    assert held(srv) == (8 + 2, 2)


@pytest.mark.db
def test_moving_a_locked_folder_leaves_no_lock_at_its_old_name(space):
    srv, _ = space
    srv.add_user("acme", "adela", "secreto-adela-1", role="admin")  # folders: admins lock
    s = windows_session("adela", "secreto-adela-1")
    d = lambda p: srv.dav("acme", quote(p))  # noqa: E731
    assert s.request("MKCOL", d("Clientes") + "/").status_code == 201
    assert s.put(d("Clientes/lista.xlsx"), data=b"x" * 10).status_code == 201
    token = lock(s, d("Clientes") + "/")  # depth infinity: the folder and its members
    r = s.request("MOVE", d("Clientes"),
                  headers={"Destination": d("Clientes 2024"), "If": f"({token})"})
    assert r.status_code == 201, r.text
    assert lock_tokens(s, d("Clientes 2024") + "/") == []

    # A new folder under the old name is not covered by the old lock.
    assert s.request("MKCOL", d("Clientes") + "/").status_code == 201
    assert lock_tokens(s, d("Clientes") + "/") == []
    assert s.put(d("Clientes/nueva.xlsx"), data=b"nueva").status_code == 201
    assert usage(srv) == stored(srv) == (15, 4)


# -- 7. the status file ------------------------------------------------------------------

T1M = """
[tiers.T1M]
quota = "1M"
max_users = 3
cfdi_years = 1
"""


def _small_space(make_server):  # type: ignore[no-untyped-def]
    srv = make_server(T1M).start()
    srv.create_space("acme", "T1M")
    srv.add_user("acme", "ana", "secreto-ana-1")
    return srv, windows_session()


def test_status_file_is_listed_readable_and_states_usage_and_tier_in_spanish(make_server):
    srv, s = _small_space(make_server)
    status_url = srv.dav("acme", quote(STATUS_FILE_NAME))
    quota_bytes = int(srv.show("acme")["quota_bytes"])

    listing = propfind(s, srv.dav("acme"), "1")
    assert f"/dav/acme/{quote(STATUS_FILE_NAME)}" in [urlsplit(h).path for h in listing]
    props = listing[next(h for h in listing if unquote(h).endswith(STATUS_FILE_NAME))]
    assert prop_text(props, f"{D}displayname") == STATUS_FILE_NAME

    r = s.get(status_url)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    before = r.content.decode("utf-8")
    assert int(prop_text(props, f"{D}getcontentlength")) == len(r.content)
    assert "Plan: T1M" in before
    assert f"Espacio usado: {formats.size(0)} de {formats.size(quota_bytes)}" in before
    assert f"Espacio disponible: {formats.size(quota_bytes)}" in before
    # es-MX figures, and the time in Mexico City with its zone.
    assert "(0.0 %)" in before
    assert re.search(r"Consultado: \d{1,2} [a-z]{3,4} \d{4}, \d{2}:\d{2} CST\r\n", before), before

    size = 256 * 1024
    assert s.put(srv.dav("acme", "datos.bin"), data=b"d" * size).status_code == 201
    after = s.get(status_url).content.decode("utf-8")
    assert after != before
    assert f"Espacio usado: {formats.size(size)} de {formats.size(quota_bytes)}" in after
    assert f"Espacio disponible: {formats.free_bytes(quota_bytes - size)}" in after
    assert "Plan: T1M" in after
    assert "Papelera y versiones: 0 bytes de 256 MB de reserva" in after

    # What is deleted leaves the plan at once, into the reserve: the file says so.
    assert s.delete(srv.dav("acme", "datos.bin")).status_code == 204
    deleted = s.get(status_url).content.decode("utf-8")
    assert f"Espacio usado: {formats.size(0)} de {formats.size(quota_bytes)}" in deleted
    assert f"Papelera y versiones: {formats.size(size)} de 256 MB de reserva; lo más " \
        "antiguo se elimina solo." in deleted
    assert "reserva aparte, fuera de su plan" in deleted


def test_status_file_is_not_counted_in_usage(make_server):
    srv, s = _small_space(make_server)
    assert s.get(srv.dav("acme", quote(STATUS_FILE_NAME))).status_code == 200
    assert usage(srv) == (0, 0)
    assert s.put(srv.dav("acme", "a.txt"), data=b"12345").status_code == 201
    assert usage(srv) == stored(srv) == (5, 1)
    assert not (srv.files_root("acme") / STATUS_FILE_NAME).exists()
    body = ('<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop>'
            "<D:quota-used-bytes/></D:prop></D:propfind>")
    (props,) = propfind(s, srv.dav("acme"), "0", body).values()
    assert int(prop_text(props, f"{D}quota-used-bytes")) == 5


def test_status_file_refuses_every_change_with_403_and_a_spanish_reason(make_server):
    srv, s = _small_space(make_server)
    status_url = srv.dav("acme", quote(STATUS_FILE_NAME))
    assert s.put(srv.dav("acme", "doc.txt"), data=b"mio").status_code == 201
    original = s.get(status_url).content
    attempts = {
        "PUT": s.put(status_url, data=b"nuevo contenido"),
        "DELETE": s.delete(status_url),
        "MOVE": s.request("MOVE", status_url,
                          headers={"Destination": srv.dav("acme", "renombrado.txt")}),
        "COPY onto": s.request("COPY", srv.dav("acme", "doc.txt"),
                               headers={"Destination": status_url, "Overwrite": "T"}),
        "MOVE onto": s.request("MOVE", srv.dav("acme", "doc.txt"),
                               headers={"Destination": status_url, "Overwrite": "T"}),
        "PROPPATCH": s.request("PROPPATCH", status_url, data=win32_proppatch_body(),
                               headers={"Content-Type": 'text/xml; charset="utf-8"'}),
        "LOCK": s.request("LOCK", status_url, data=LOCK_BODY,
                          headers={"Content-Type": 'text/xml; charset="utf-8"'}),
    }
    for what, r in attempts.items():
        assert r.status_code == 403, (what, r.status_code, r.text)
        assert READ_ONLY_MESSAGE in r.text, (what, r.text)
        assert "solo lectura" in r.text
    assert s.get(status_url).content == original
    assert s.get(srv.dav("acme", "doc.txt")).content == b"mio"
    assert s.get(srv.dav("acme", "renombrado.txt")).status_code == 404
    assert usage(srv) == stored(srv) == (3, 1)


# -- 8. locks and dead properties outlive the process -----------------------------------

@pytest.mark.db
def test_locks_and_dead_properties_survive_a_restart(space):
    srv, _ = space
    s = windows_session()
    path = quote("Contrato Ñuñoa.odt")
    assert s.put(srv.dav("acme", path), data=b"contrato").status_code == 201
    token = lock(s, srv.dav("acme", path))
    value = "Ferretería «El Martillo» & Hijos"
    pp = ('<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:" '
          'xmlns:E="http://example.com/ns"><D:set><D:prop>'
          f"<E:cliente>{value.replace('&', '&amp;')}</E:cliente>"
          "</D:prop></D:set></D:propertyupdate>")
    r = s.request("PROPPATCH", srv.dav("acme", path), data=pp,
                  headers={"If": f"({token})", "Content-Type": 'text/xml; charset="utf-8"'})
    (props,) = multistatus(r).values()
    assert " 200 " in props["{http://example.com/ns}cliente"][0]

    srv.restart()
    url = srv.dav("acme", path)  # the new process listens on another port
    body = ('<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:E="http://example.com/ns">'
            "<D:prop><E:cliente/></D:prop></D:propfind>")
    (props,) = propfind(s, url, "0", body).values()
    assert prop_text(props, "{http://example.com/ns}cliente") == value
    assert lock_tokens(s, url) == [token.strip("<>")]

    assert s.put(url, data=b"sin token").status_code == 423
    assert s.put(url, data=b"con token", headers={"If": f"({token})"}).status_code == 204
    assert s.get(url).content == b"con token"
    assert s.request("UNLOCK", url, headers={"Lock-Token": token}).status_code == 204
    assert lock_tokens(s, url) == []
