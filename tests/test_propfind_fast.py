"""The PROPFIND fast path (davserver/propfind.py) answers exactly what WsgiDAV's
own do_PROPFIND answers: same members, same properties, same values, same
statuses, for every body a client sends, on folders, files, the space root (with
its status file), locked members and members with dead properties.

Both answers come from the same in-process application on the same tree; the
fast one is checked to really come from the fast path."""

from __future__ import annotations

import base64
import io
import wsgiref.util
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from lxml import etree

from davserver.app import make_app
from davserver.propfind import DISABLE_KEY
from spaces.access.service import add_member, create_space
from spaces.core.db import open_database
from spaces.core.settings_file import load_settings

D = "{DAV:}"
AUTH = "Basic " + base64.b64encode(b"ana:secreto-ana-1").decode()
BODIES = {
    "none": b"",
    "allprop": b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>',
    "propname": b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:propname/></D:propfind>',
    "name": b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:name/></D:propfind>',
    "include": (b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/>'
                b"<D:include><D:getetag/></D:include></D:propfind>"),
    "named": (b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:" '
              b'xmlns:Z="urn:schemas-microsoft-com:" xmlns:X="http://example.com/x">'
              b"<D:prop><D:displayname/><D:getcontentlength/><D:getetag/><D:resourcetype/>"
              b"<D:getlastmodified/><D:creationdate/><D:getcontenttype/><D:lockdiscovery/>"
              b"<D:supportedlock/><D:quota-used-bytes/><D:quota-available-bytes/>"
              b"<D:ishidden/><Z:Win32FileAttributes/><Z:Win32CreationTime/><X:nada/>"
              b'<sinespacio xmlns=""/></D:prop></D:propfind>'),
    "windows": (b'<?xml version="1.0" encoding="utf-8" ?><D:propfind xmlns:D="DAV:"><D:prop>'
                b"<D:name/><D:parentname/><D:href/><D:ishidden/><D:isreadonly/>"
                b"<D:getcontenttype/><D:contentclass/><D:getcontentlanguage/><D:creationdate/>"
                b"<D:lastaccessed/><D:getlastmodified/><D:getcontentlength/><D:iscollection/>"
                b"<D:isstructureddocument/><D:defaultdocument/><D:displayname/><D:isroot/>"
                b"<D:resourcetype/></D:prop></D:propfind>"),
}
WIN32 = (b'<?xml version="1.0" encoding="utf-8" ?>'
         b'<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:schemas-microsoft-com:" '
         b'xmlns:X="http://example.com/x"><D:set><D:prop>'
         b"<Z:Win32CreationTime>Wed, 15 Mar 2017 10:20:30 GMT</Z:Win32CreationTime>"
         b"<Z:Win32FileAttributes>00000020</Z:Win32FileAttributes>"
         b"<X:nota>con <X:hijo a=\"1\">marcado</X:hijo> &amp; texto</X:nota>"
         b"</D:prop></D:set></D:propertyupdate>")
LOCK = (b'<?xml version="1.0" encoding="utf-8" ?><D:lockinfo xmlns:D="DAV:">'
        b"<D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>"
        b"<D:owner><D:href>OFICINA\\ana</D:href></D:owner></D:lockinfo>")


class App:
    def __init__(self, tmp_path: Path) -> None:
        cfg = tmp_path / "resguardo.toml"
        cfg.write_text(f'data_dir = "{tmp_path / "data"}"\n[demo]\ncreate = false\n',
                       encoding="utf-8")
        self.settings = load_settings(cfg)
        self.settings.data_path.mkdir(parents=True, exist_ok=True)
        self.db = open_database(self.settings)
        create_space(self.settings, self.db, "acme", "4G")
        add_member(self.db, "acme", "ana", "secreto-ana-1", "admin")  # admins lock folders
        self.app = make_app(self.settings, self.db)
        self.root = self.settings.data_path / "spaces" / "acme" / "files"

    def call(self, method: str, path: str, body: bytes = b"", fast: bool = True,
             **headers: str) -> tuple[str, dict[str, str], bytes, dict[str, Any]]:
        env: dict[str, Any] = {}
        wsgiref.util.setup_testing_defaults(env)
        # As cheroot hands it over: decoded, UTF-8 bytes as latin-1 (PEP 3333).
        wsgi_path = unquote(path).encode("utf-8").decode("latin-1")
        env.update({"REQUEST_METHOD": method, "PATH_INFO": wsgi_path, "SCRIPT_NAME": "",
                    "REQUEST_URI": path,
                    "HTTP_AUTHORIZATION": AUTH, "wsgi.input": io.BytesIO(body),
                    "CONTENT_LENGTH": str(len(body)), "HTTP_HOST": "127.0.0.1"})
        if not fast:
            env[DISABLE_KEY] = False
        for k, v in headers.items():
            env["HTTP_" + k.upper()] = v
        out: dict[str, Any] = {}

        def start_response(status: str, hdrs: list[tuple[str, str]], exc: Any = None) -> None:
            out["status"], out["headers"] = status, dict(hdrs)

        data = b"".join(self.app(env, start_response))
        return out["status"], out["headers"], data, env


def _norm(el: etree._Element) -> Any:
    """Structure of an element without namespace prefixes; lock timeouts (which
    tick between two requests) are left out."""
    if el.tag == f"{D}timeout":
        return (el.tag, "")
    text = (el.text or "").strip()
    kids = sorted(_norm(c) for c in el if isinstance(c.tag, str))
    return (el.tag, text, tuple(sorted(el.attrib.items())), tuple(kids))


def multistatus(body: bytes) -> dict[str, dict[str, tuple[str, Any]]]:
    out: dict[str, dict[str, tuple[str, Any]]] = {}
    for resp in etree.fromstring(body).iter(f"{D}response"):
        href = resp.findtext(f"{D}href")
        assert href not in out, f"{href} listed twice"
        props: dict[str, tuple[str, Any]] = {}
        for ps in resp.findall(f"{D}propstat"):
            status = ps.findtext(f"{D}status")
            for p in ps.find(f"{D}prop"):
                assert p.tag not in props, (href, p.tag)
                props[p.tag] = (status, _norm(p))
                if "LEEME" in (href or "") and p.tag in (
                        f"{D}getlastmodified", f"{D}creationdate", f"{D}getetag"):
                    # The status file is rendered 'now' (its text shows the minute).
                    props[p.tag] = (status, "now")
        out[href] = props
    return out


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> App:
    """One tree for the whole module: PROPFIND changes nothing."""
    a = App(tmp_path_factory.mktemp("propfind"))
    r = a.root
    (r / "Facturas 2024").mkdir()
    (r / "vacía").mkdir()
    names = ["a.txt", "informe final.docx", "año & cía <1>.pdf", "sin-extension",
             "copia.tar.gz", "DATOS.XML", "100%.csv", "(paréntesis)!'*.txt", "a+b=c;d.txt"]
    for i, n in enumerate(names):
        (r / n).write_bytes(b"x" * (i * 37))
        (r / "Facturas 2024" / n).write_bytes(b"y" * (i * 11 + 1))
    (r / "Facturas 2024" / "sub").mkdir()
    # Dead properties and a lock, through the application itself.
    for target in ("/dav/acme/informe%20final.docx", "/dav/acme/Facturas%202024/a.txt",
                   "/dav/acme/Facturas%202024/sub/", "/dav/acme/vac%C3%ADa/"):
        st, _, body, _ = a.call("PROPPATCH", target, WIN32,
                                content_type='text/xml; charset="utf-8"')
        assert st.startswith("207"), (target, st, body)
    for target in ("/dav/acme/a.txt", "/dav/acme/Facturas%202024/sub/"):
        st, _, body, _ = a.call("LOCK", target, LOCK, timeout="Second-3600",
                                content_type='text/xml; charset="utf-8"')
        assert st.startswith("200"), (target, st, body)
    return a


@pytest.mark.parametrize("body", sorted(BODIES))
@pytest.mark.parametrize("path,depth", [
    ("/dav/acme/", "1"), ("/dav/acme/", "0"), ("/dav/acme", "1"),
    ("/dav/acme/Facturas%202024/", "1"), ("/dav/acme/Facturas%202024", "0"),
    ("/dav/acme/vac%C3%ADa/", "1"), ("/dav/acme/Facturas%202024/sub/", "1"),
    ("/dav/acme/informe%20final.docx", "0"), ("/dav/acme/informe%20final.docx", "1"),
    ("/dav/acme/a.txt", "0"),
])
def test_fast_propfind_answers_exactly_what_wsgidav_answers(app: App, path: str, depth: str,
                                                            body: str) -> None:
    data = BODIES[body]
    slow_status, slow_headers, slow, slow_env = app.call("PROPFIND", path, data, fast=False,
                                                         depth=depth)
    fast_status, fast_headers, fast, fast_env = app.call("PROPFIND", path, data, depth=depth)
    assert not slow_env.get("resguardo.propfind_fast_used")
    assert fast_env.get("resguardo.propfind_fast_used"), "the fast path did not answer"
    assert slow_status == fast_status == "207 Multi-Status"
    assert fast_headers["Content-Type"] == slow_headers["Content-Type"]
    assert int(fast_headers["Content-Length"]) == len(fast)
    assert multistatus(fast) == multistatus(slow)


def test_fast_propfind_lists_every_member_with_its_size(app: App) -> None:
    _, _, body, env = app.call("PROPFIND", "/dav/acme/Facturas%202024/", BODIES["allprop"],
                               depth="1")
    assert env.get("resguardo.propfind_fast_used")
    ms = multistatus(body)
    sizes = {}
    for href, props in ms.items():
        if f"{D}getcontentlength" in props:
            sizes[href.rsplit("/", 1)[1]] = int(props[f"{D}getcontentlength"][1][1])
    on_disk = {p.name: p.stat().st_size for p in (app.root / "Facturas 2024").iterdir()
               if p.is_file()}
    assert {unquote(k): v for k, v in sizes.items()} == on_disk


@pytest.mark.parametrize("headers", [{"depth": "infinity"}, {"if_none_match": '"x"'},
                                     {"depth": "1", "if": "(<urn:nada>)"}])
def test_unusual_propfind_goes_to_wsgidav(app: App, headers: dict[str, str]) -> None:
    _, _, _, env = app.call("PROPFIND", "/dav/acme/", BODIES["allprop"], **headers)
    assert not env.get("resguardo.propfind_fast_used")


def test_malformed_propfind_body_gets_wsgidavs_answer(app: App) -> None:
    bad = b"<D:propfind xmlns:D='DAV:'><D:allprop/>"
    slow = app.call("PROPFIND", "/dav/acme/", bad, fast=False, depth="1")
    fast = app.call("PROPFIND", "/dav/acme/", bad, depth="1")
    assert fast[0] == slow[0] and fast[0].startswith("400")
    assert not fast[3].get("resguardo.propfind_fast_used")


def test_a_name_plain_text_cannot_carry_goes_to_wsgidav_with_its_body(app: App) -> None:
    """The fast path reads the body before it meets the name; WsgiDAV must still
    get the body (a named request, not an empty one meaning allprop)."""
    (app.root / "raro").mkdir(exist_ok=True)
    (app.root / "raro" / "línea\rdos.txt").write_bytes(b"abc")
    slow = app.call("PROPFIND", "/dav/acme/raro/", BODIES["named"], fast=False, depth="1")
    fast = app.call("PROPFIND", "/dav/acme/raro/", BODIES["named"], depth="1")
    assert not fast[3].get("resguardo.propfind_fast_used")
    assert fast[0] == slow[0] == "207 Multi-Status"
    assert multistatus(fast[2]) == multistatus(slow[2])
    assert f"{D}displayname" in next(iter(multistatus(fast[2]).values()))
    assert f"{D}supportedlock" in next(iter(multistatus(fast[2]).values()))
