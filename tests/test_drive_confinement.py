"""What a drive user reaches: only its own space (every method, COPY and MOVE
destinations included), reads only when a reader, and nothing learnt from a refusal (401s
alike for existing and missing spaces, error pages in plain Spanish naming no server
internals)."""

from __future__ import annotations

import re

import pytest
from drive_helpers import (
    ANA,
    BETO,
    LOCK_BODY,
    PROPPATCH_BODY,
    SECRET_B,
    Reply,
    lock,
    raw,
    state,
    two_spaces,
)

PROPFIND_NOTA = ('<?xml version="1.0"?><D:propfind xmlns:D="DAV:" '
                 'xmlns:Z="urn:resguardo:test"><D:prop><Z:nota/><D:lockdiscovery/>'
                 '</D:prop></D:propfind>')


# -- helpers -----------------------------------------------------------------------

def dead_props(srv, space: str, path: str, who: tuple[str, str]) -> str:
    r = raw(srv, "PROPFIND", f"/dav/{space}/{path}", auth=who,
            headers={"Depth": "0"}, body=PROPFIND_NOTA)
    assert r.status == 207, r
    return r.body.decode()


# -- cross-space ----------------------------------------------------------------

@pytest.mark.db
def test_credentials_of_one_space_get_401_for_every_method_in_another_and_change_nothing(
        make_server):
    srv = two_spaces(make_server)
    beto_lock = lock(srv, "beta", "docs/d.txt", BETO)
    before_b, before_a = state(srv, "beta"), state(srv, "alfa")
    here = srv.url
    attempts = [
        ("OPTIONS", "/dav/beta/", {}, None),
        ("GET", "/dav/beta/secreto.txt", {}, None),
        ("HEAD", "/dav/beta/secreto.txt", {}, None),
        ("PUT", "/dav/beta/secreto.txt", {}, b"pisado"),
        ("PUT", "/dav/beta/nuevo.txt", {}, b"intruso"),
        ("DELETE", "/dav/beta/secreto.txt", {}, None),
        ("DELETE", "/dav/beta/docs/", {}, None),
        ("MKCOL", "/dav/beta/nueva/", {}, None),
        ("PROPFIND", "/dav/beta/", {"Depth": "1"}, None),
        ("PROPFIND", "/dav/beta/secreto.txt", {"Depth": "0"}, None),
        ("PROPPATCH", "/dav/beta/secreto.txt", {}, PROPPATCH_BODY),
        ("LOCK", "/dav/beta/secreto.txt", {"Timeout": "Second-60"}, LOCK_BODY),
        ("LOCK", "/dav/beta/bloqueo-nuevo.txt", {"Timeout": "Second-60"}, LOCK_BODY),
        ("UNLOCK", "/dav/beta/docs/d.txt", {"Lock-Token": beto_lock}, None),
        ("COPY", "/dav/beta/secreto.txt", {"Destination": f"{here}/dav/beta/copia.txt"}, None),
        ("COPY", "/dav/beta/secreto.txt", {"Destination": f"{here}/dav/alfa/robado.txt"}, None),
        ("COPY", "/dav/beta/docs/", {"Destination": f"{here}/dav/alfa/robada/"}, None),
        ("MOVE", "/dav/beta/secreto.txt", {"Destination": f"{here}/dav/beta/movido.txt"}, None),
        ("MOVE", "/dav/beta/secreto.txt", {"Destination": f"{here}/dav/alfa/robado.txt"}, None),
        ("MOVE", "/dav/beta/docs/", {"Destination": f"{here}/dav/alfa/robada/"}, None),
        # The space's name in another spelling is the same space.
        ("GET", "/dav/BETA/secreto.txt", {}, None),
        ("GET", "/dav/%62eta/secreto.txt", {}, None),
        ("PUT", "/dav/Beta/nuevo.txt", {}, b"intruso"),
    ]
    for who in (ANA, ("alfa\\ana", ANA[1]), ("beta\\ana", ANA[1])):
        for method, path, headers, body in attempts:
            r = raw(srv, method, path, auth=who, headers=headers, body=body)
            assert r.status == 401, (who[0], method, path, r)
            assert b"SECRETO" not in r.body
            assert r.header("WWW-Authenticate") == 'Basic realm="beta"'

    assert state(srv, "beta") == before_b
    assert state(srv, "alfa") == before_a
    props = dead_props(srv, "beta", "secreto.txt", BETO)
    assert "alterado" not in props and "intruso" not in props
    assert beto_lock.strip("<>") in dead_props(srv, "beta", "docs/d.txt", BETO)
    # The same credentials are good where they belong, and B still serves B.
    assert raw(srv, "GET", "/dav/alfa/f.txt", auth=ANA).body == b"de alfa\n"
    assert raw(srv, "GET", "/dav/beta/secreto.txt", auth=BETO).body == SECRET_B


def test_options_is_anonymous_only_on_the_windows_probes_and_names_no_space(make_server):
    """OPTIONS / and /dav/ must answer without credentials (Windows probes them
    before it asks for a password); they describe an empty collection. OPTIONS
    on a space is like any other method there: 401 without its credentials."""
    srv = two_spaces(make_server)
    for path in ("/", "/dav/"):
        r = raw(srv, "OPTIONS", path)
        assert r.status == 200, (path, r)
        assert "1" in (r.header("DAV") or "")
        assert b"alfa" not in r.body and b"beta" not in r.body
    for path in ("/", "/dav/"):
        r = raw(srv, "PROPFIND", path, headers={"Depth": "1"})
        assert r.status == 207
        hrefs = re.findall(rb"<D:href>([^<]*)</D:href>", r.body)
        assert hrefs == [path.encode()], hrefs
    for who in (None, ANA):
        r = raw(srv, "OPTIONS", "/dav/beta/", auth=who)
        assert r.status == 401
        assert r.header("Allow") is None and r.header("DAV") is None
    assert raw(srv, "OPTIONS", "/dav/beta/", auth=BETO).status == 200


# -- COPY/MOVE destinations -----------------------------------------------------

def test_copy_and_move_into_another_space_or_host_are_refused_and_nothing_arrives(
        make_server):
    srv = two_spaces(make_server)
    before_b, before_a = state(srv, "beta"), state(srv, "alfa")
    here = srv.url
    into_b = [
        f"{here}/dav/beta/x.txt",
        "/dav/beta/x.txt",
        f"{here}/dav/BETA/x.txt",
        f"{here}/dav/%62eta/x.txt",
        f"{here}/dav/beta/secreto.txt",  # an existing file: must not be replaced
        f"{here}/dav/beta/docs/",  # an existing folder: must not be deleted first
        f"{here}/dav/beta",
    ]
    # Tricks that name space A but resolve into B: refused as such (400) or as B (403).
    tricks = [
        f"{here}/dav/alfa/../beta/x.txt",
        f"{here}/dav/alfa/%2e%2e/beta/secreto.txt",
        f"{here}/dav/alfa/..%2fbeta%2fx.txt",
        f"{here}/dav/alfa%2f..%2fbeta/x.txt",
        f"{here}/dav/alfa/carpeta/../../beta/docs/",
    ]
    for method in ("COPY", "MOVE"):
        for src in ("f.txt", "carpeta/"):
            for dest in into_b + tricks:
                for overwrite in ("T", "F"):
                    r = raw(srv, method, f"/dav/alfa/{src}", auth=ANA,
                            headers={"Destination": dest, "Overwrite": overwrite,
                                     "Depth": "infinity"})
                    expected = (403,) if dest in into_b else (400, 403)
                    assert r.status in expected, (method, src, dest, r)
                    assert b"SECRETO" not in r.body
            r = raw(srv, method, f"/dav/alfa/{src}", auth=ANA,
                    headers={"Destination": "http://other.example/dav/alfa/x.txt"})
            assert r.status == 502, (method, src, r)
            # The drive's root is no place either (it was a 500 before).
            r = raw(srv, method, f"/dav/alfa/{src}", auth=ANA,
                    headers={"Destination": f"{here}/dav/"})
            assert 400 <= r.status < 500, (method, src, r)
    assert state(srv, "beta") == before_b
    assert state(srv, "alfa") == before_a
    assert raw(srv, "GET", "/dav/beta/secreto.txt", auth=BETO).body == SECRET_B
    # Within the space the same COPY works: the refusals were about the target.
    r = raw(srv, "COPY", "/dav/alfa/f.txt", auth=ANA,
            headers={"Destination": f"{here}/dav/alfa/g.txt"})
    assert r.status == 201


# -- 401s reveal no space -------------------------------------------------------

def _comparable(r: Reply, realm: str) -> tuple[object, ...]:
    headers = [(k.lower(), v.replace(f'realm="{realm}"', 'realm="*"'))
               for k, v in r.headers if k.lower() != "date"]
    return r.status, headers, r.body


@pytest.mark.parametrize("who", [None, ANA, ("beto", "clave-equivocada")],
                         ids=["anonymous", "foreign-user", "wrong-password"])
def test_401_for_an_existing_and_a_missing_space_look_the_same(make_server, who):
    srv = two_spaces(make_server)
    requests_to_try = [("GET", "secreto.txt", {}, None), ("HEAD", "secreto.txt", {}, None),
                       ("PROPFIND", "", {"Depth": "1"}, None),
                       ("PUT", "nuevo.txt", {}, b"hola"), ("OPTIONS", "", {}, None),
                       ("DELETE", "secreto.txt", {}, None), ("MKCOL", "n/", {}, None)]
    for method, path, headers, body in requests_to_try:
        existing = raw(srv, method, f"/dav/beta/{path}", auth=who, headers=headers, body=body)
        missing = raw(srv, method, f"/dav/nadie/{path}", auth=who, headers=headers, body=body)
        assert existing.status == 401, (method, existing)
        assert existing.header("WWW-Authenticate") == 'Basic realm="beta"'
        assert missing.header("WWW-Authenticate") == 'Basic realm="nadie"'
        assert _comparable(existing, "beta") == _comparable(missing, "nadie"), method
    assert raw(srv, "GET", "/dav/beta/secreto.txt", auth=BETO).body == SECRET_B


# -- error pages: Spanish, plain, nothing about the server --------------------

@pytest.mark.parametrize("method,path,headers,expected_status,spanish", [
    ("GET", "/dav/alfa/f.txt", None, 401, "usuario y la contraseña"),
    ("GET", "/dav/alfa/no-existe.txt", ANA, 404, "No existe"),
    ("PUT", "/dav/alfa/falta/carpeta/a.txt", ANA, 409, "carpeta"),
    ("MKCOL", "/dav/alfa/carpeta/", ANA, 405, "no se permite"),
    ("MOVE", "/dav/alfa/f.txt", ANA, 412, "ya existe"),
    ("COPY", "/dav/alfa/f.txt", ANA, 502, "otro servidor"),
], ids=["401", "404", "409", "405", "412", "502"])
def test_error_pages_are_spanish_plain_text_and_name_no_server_internals(
        make_server, method, path, headers, expected_status, spanish):
    """WsgiDAV's own error pages are English HTML naming its version and the time
    (and on a 500, the exception): the drive answers every error in Spanish,
    plain text, with the same status."""
    srv = two_spaces(make_server)
    extra = {}
    if method == "MOVE":
        extra = {"Destination": f"{srv.url}/dav/alfa/carpeta/x.txt", "Overwrite": "F"}
    if method == "COPY":
        extra = {"Destination": "http://otro.example.com/dav/alfa/g.txt"}
    body = b"hola" if method == "PUT" else None
    r = raw(srv, method, path, auth=headers, headers=extra, body=body)
    assert r.status == expected_status, r
    assert (r.header("Content-Type") or "").startswith("text/plain"), r.headers
    text = r.body.decode("utf-8")
    assert spanish.lower() in text.lower(), text
    for leak in ("WsgiDAV", "wsgidav", "Traceback", "<html", "Source exception"):
        assert leak not in text, text
    assert int(r.header("Content-Length")) == len(r.body)
    head = raw(srv, "HEAD", "/dav/alfa/no-existe.txt", auth=ANA)
    assert head.status == 404 and head.body == b""


# -- readers --------------------------------------------------------------------

def test_reader_can_read_but_every_write_gets_403_in_spanish_and_changes_nothing(
        make_server):
    srv = two_spaces(make_server)
    rita = ("rita", "secreto-rita-1")
    srv.add_user("alfa", *rita, role="reader")
    ana_lock = lock(srv, "alfa", "carpeta/x.txt", ANA)
    before = state(srv, "alfa")
    here = srv.url

    assert raw(srv, "GET", "/dav/alfa/f.txt", auth=rita).body == b"de alfa\n"
    assert raw(srv, "HEAD", "/dav/alfa/f.txt", auth=rita).status == 200
    r = raw(srv, "PROPFIND", "/dav/alfa/", auth=rita, headers={"Depth": "1"})
    assert r.status == 207 and b"/dav/alfa/f.txt" in r.body and b"/dav/alfa/carpeta/" in r.body

    writes = [
        ("PUT", "f.txt", {}, b"pisado"),
        ("PUT", "nuevo.txt", {}, b"nuevo"),
        ("DELETE", "f.txt", {}, None),
        ("DELETE", "carpeta/", {}, None),
        ("MKCOL", "nueva/", {}, None),
        ("COPY", "f.txt", {"Destination": f"{here}/dav/alfa/copia.txt"}, None),
        ("MOVE", "f.txt", {"Destination": f"{here}/dav/alfa/movido.txt"}, None),
        ("MOVE", "carpeta/", {"Destination": f"{here}/dav/alfa/otra/"}, None),
        ("PROPPATCH", "f.txt", {}, PROPPATCH_BODY),
        ("LOCK", "f.txt", {"Timeout": "Second-60"}, LOCK_BODY),
        ("LOCK", "bloqueo-nuevo.txt", {"Timeout": "Second-60"}, LOCK_BODY),
        ("UNLOCK", "carpeta/x.txt", {"Lock-Token": ana_lock}, None),
    ]
    for method, path, headers, body in writes:
        r = raw(srv, method, f"/dav/alfa/{path}", auth=rita, headers=headers, body=body)
        assert r.status == 403, (method, path, r)
        text = r.body.decode("utf-8")
        assert "solo de lectura" in text and "rita" in text, text
        assert (r.header("Content-Type") or "").startswith("text/plain")

    assert state(srv, "alfa") == before
    assert "alterado" not in dead_props(srv, "alfa", "f.txt", ANA)
    # Ana's lock survived rita's UNLOCK: without its token even ana cannot write.
    assert raw(srv, "PUT", "/dav/alfa/carpeta/x.txt", auth=ANA, body=b"y").status == 423
    assert raw(srv, "UNLOCK", "/dav/alfa/carpeta/x.txt", auth=ANA,
               headers={"Lock-Token": ana_lock}).status == 204
    # And an editor (the default role) does write: the 403s were about the role.
    assert raw(srv, "PUT", "/dav/alfa/nuevo.txt", auth=ANA, body=b"nuevo").status == 201
