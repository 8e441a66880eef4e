"""Access on the live drive: spaces are sealed from each other, users and roles
behave, the credential cache never outlives a change, bad passwords are slowed,
timing and 401s reveal nothing, and hostile paths never leave the space.

Requests that ``requests`` would normalise (dot segments, encoded separators,
odd methods with exact headers) go through :func:`raw`, which sends the path
byte for byte.
"""

from __future__ import annotations

import base64
import http.client
import os
import re
import stat
import statistics
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests
from conftest import ROOT

from spaces.core.passwords import HASH_SLOTS

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
PROPFIND_NOTA = ('<?xml version="1.0"?><D:propfind xmlns:D="DAV:" '
                 'xmlns:Z="urn:resguardo:test"><D:prop><Z:nota/><D:lockdiscovery/>'
                 '</D:prop></D:propfind>')


# -- helpers -----------------------------------------------------------------------

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


def dead_props(srv, space: str, path: str, who: tuple[str, str]) -> str:
    r = raw(srv, "PROPFIND", f"/dav/{space}/{path}", auth=who,
            headers={"Depth": "0"}, body=PROPFIND_NOTA)
    assert r.status == 207, r
    return r.body.decode()


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


# -- 1. cross-space ----------------------------------------------------------------

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


# -- 2. COPY/MOVE destinations -----------------------------------------------------

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


# -- 3. 401s reveal no space -------------------------------------------------------

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


# -- 3b. error pages: Spanish, plain, nothing about the server --------------------

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


# -- 4. readers --------------------------------------------------------------------

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


# -- 5. user limit -----------------------------------------------------------------

@pytest.mark.db
def test_second_user_in_the_1g_tier_is_refused_with_one_line_naming_the_limit(make_server):
    srv = make_server()
    srv.create_space("uno", "1G")
    srv.add_user("uno", "primero", "secreto-uno-1")
    p = srv.cli("user", "add", "uno", "segundo", "--password-stdin",
                input="secreto-dos-2\n", check=False)
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert "1 de 1" in lines[0] and "1G" in lines[0]
    assert "Traceback" not in p.stderr
    assert srv.cli("user", "list", "uno").stdout.split() == ["primero", "editor"]
    assert srv.show("uno")["users"] == 1


TWO_USERS = """
[tiers.T2]
quota = "1M"
max_users = 2
cfdi_years = 1
"""


@pytest.mark.db
@pytest.mark.parametrize("contenders", [2, 5])
def test_simultaneous_user_adds_for_the_last_free_slot_admit_exactly_one(
        make_server, contenders):
    srv = make_server(TWO_USERS)
    srv.create_space("par", "T2")
    srv.add_user("par", "primero", "secreto-uno-1")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "resguardo", "--config", str(srv.config), "user", "add",
             "par", f"nuevo{i}", "--password-stdin"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, cwd=ROOT)
        for i in range(contenders)
    ]
    results = [(p, *p.communicate("secreto-nuevo-1\n", timeout=120)) for p in procs]
    winners = [out for p, out, _ in results if p.returncode == 0]
    losers = [err for p, _, err in results if p.returncode != 0]
    assert len(winners) == 1, results
    assert len(losers) == contenders - 1
    for err in losers:
        assert len(err.strip().splitlines()) == 1 and "2 de 2" in err, err
    assert srv.show("par")["users"] == 2
    names = srv.cli("user", "list", "par").stdout.split()[::2]
    assert names[0] == "primero" and len(names) == 2


@pytest.mark.db
def test_after_a_downgrade_the_newest_extra_users_get_401_until_some_are_removed(
        make_server):
    srv = make_server(NO_THROTTLE).start()  # a long credential cache on purpose
    srv.create_space("baja", "4G")
    users = [(f"u{i}", f"secreto-u{i}-1") for i in (1, 2, 3)]
    for u in users:  # one after the other: u1 is the oldest
        srv.add_user("baja", *u)

    def status(who):
        return raw(srv, "PROPFIND", "/dav/baja/", auth=who, headers={"Depth": "0"}).status

    assert [status(u) for u in users] == [207, 207, 207]  # now all are cached
    srv.cli("space", "tier", "baja", "1G")
    assert [status(u) for u in users] == [207, 401, 401]
    p = srv.cli("user", "add", "baja", "u4", "--password-stdin", input="secreto-u4-1\n",
                check=False)
    assert p.returncode != 0 and "de 1" in p.stderr

    srv.cli("user", "remove", "baja", "u3")
    assert [status(u) for u in users[:2]] == [207, 401]  # still two users for one place
    srv.cli("user", "remove", "baja", "u1")
    assert status(users[1]) == 207  # u2 is now the oldest: it logs in again
    assert status(users[0]) == 401 and status(users[2]) == 401  # removed


# -- 6. credential cache -----------------------------------------------------------

@pytest.mark.db
def test_password_change_and_removal_take_effect_at_once_despite_the_cache(make_server):
    srv = make_server("[auth]\ncache_seconds = 3600\n").start()
    srv.create_space("cache", "4G")
    srv.add_user("cache", *ANA)
    url = "/dav/cache/"
    for _ in range(3):  # verified once, then served from the cache
        assert raw(srv, "PROPFIND", url, auth=ANA, headers={"Depth": "0"}).status == 207

    srv.cli("user", "passwd", "cache", "ana", "--password-stdin", input="nueva-clave-ana\n")
    assert raw(srv, "PROPFIND", url, auth=ANA, headers={"Depth": "0"}).status == 401
    new = ("ana", "nueva-clave-ana")
    assert raw(srv, "PROPFIND", url, auth=new, headers={"Depth": "0"}).status == 207
    assert raw(srv, "PROPFIND", url, auth=new, headers={"Depth": "0"}).status == 207

    srv.cli("user", "remove", "cache", "ana")
    assert raw(srv, "PROPFIND", url, auth=new, headers={"Depth": "0"}).status == 401
    assert raw(srv, "PROPFIND", url, auth=ANA, headers={"Depth": "0"}).status == 401
    # Back with the first password: the old cache entry must not vouch for it
    # either way; it is checked against the new hash.
    srv.add_user("cache", *ANA)
    assert raw(srv, "PROPFIND", url, auth=new, headers={"Depth": "0"}).status == 401
    assert raw(srv, "PROPFIND", url, auth=ANA, headers={"Depth": "0"}).status == 207


ARGON2_MIB = 19  # spaces/core/passwords.py: OWASP's 19 MiB per check


def password_checks(srv) -> float:
    """The drive's count of argon2 checks, from its /metrics."""
    text = requests.get(srv.url + "/metrics", timeout=10).text
    return float(re.search(r"^resguardo_drive_password_checks_total (\S+)$", text, re.M)[1])


def test_a_crowd_of_simultaneous_logins_runs_only_a_few_password_checks_at_a_time(
        make_server):
    """argon2 takes 19 MiB per check. Twenty-four clients arriving together (eight
    sessions of one user whose cache entry is new or expired, eight other users,
    eight wrong passwords) must not each hold those 19 MiB at once: the same
    credentials are checked once for all who wait on them, and the process runs
    at most as many checks at a time as it has cores. The kernel's own peak
    (VmHWM, reset just before) says how much the crowd cost."""
    srv = make_server(NO_THROTTLE).start()
    srv.create_space("acme", "40G")
    for i in range(9):
        srv.add_user("acme", f"u{i}", f"secreto-u{i}-1")
    who = ([("u1", "secreto-u1-1")] * 8 + [(f"u{i}", f"secreto-u{i}-1") for i in range(1, 9)]
           + [(f"u{i}", "no-es-la-clave") for i in range(1, 9)])
    barrier = threading.Barrier(len(who))

    def login(cred: tuple[str, str]) -> int:
        barrier.wait()
        return raw(srv, "PROPFIND", "/dav/acme/", auth=cred, headers={"Depth": "0"}).status

    # Steady state first: every worker thread busy once with a cached login (its
    # database connection open), so what grows next is the password checks.
    with ThreadPoolExecutor(len(who)) as pool:
        assert set(pool.map(login, [("u0", "secreto-u0-1")] * len(who))) == {207}
    try:
        Path(f"/proc/{srv.proc.pid}/clear_refs").write_text("5")
    except OSError as exc:
        pytest.skip(f"this kernel does not let the peak be reset (clear_refs): {exc}")
    before = srv.rss_kib()
    checks_before = password_checks(srv)

    with ThreadPoolExecutor(len(who)) as pool:
        statuses = list(pool.map(login, who))
    assert statuses == [207] * 16 + [401] * 8
    # u1's nine requests share one check; u2-u8 one each; each wrong password one.
    assert password_checks(srv) - checks_before == 1 + 7 + 8
    peak = 0
    for line in Path(f"/proc/{srv.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1])
    grown_mib = (peak - before) / 1024
    # The server runs on this machine: as many checks at a time as it allows here.
    assert grown_mib < (HASH_SLOTS + 1) * ARGON2_MIB + 16, (grown_mib, HASH_SLOTS)


# -- 7. throttling -----------------------------------------------------------------

THROTTLE = """
[auth]
max_failures = 2
failure_window_seconds = 60
max_block_seconds = 1
"""


def test_repeated_bad_passwords_block_even_the_right_one_briefly_then_it_works(make_server):
    srv = two_spaces(make_server, THROTTLE)
    wrong = ("ana", "no-es-la-clave")

    def get(who):
        return raw(srv, "GET", "/dav/alfa/f.txt", auth=who).status

    assert get(ANA) == 200
    assert [get(wrong), get(wrong)] == [401, 401]
    assert get(ANA) == 401  # blocked: the right password is not even checked
    time.sleep(1.3)
    # Another failure after the pause would double it (2 s) but max_block_seconds
    # caps it at 1 s.
    assert get(wrong) == 401
    assert get(ANA) == 401
    time.sleep(1.3)
    assert get(ANA) == 200
    assert get(ANA) == 200


def test_other_users_from_the_same_address_are_not_blocked_before_the_address_limit(
        make_server):
    srv = two_spaces(make_server, THROTTLE)  # per address: 4 x 2 = 8 failures

    def get(who, space="beta"):
        path = "/dav/beta/secreto.txt" if space == "beta" else "/dav/alfa/f.txt"
        return raw(srv, "GET", path, auth=who).status

    assert [get(("ana", "mala"), "alfa"), get(("ana", "mala"), "alfa")] == [401, 401]
    assert get(ANA, "alfa") == 401  # ana is blocked ...
    assert get(BETO) == 200  # ... beto, from the same address, is not
    failures = 2
    for i in range(3):  # sprayed names: each blocked after 2, the address counts all
        for _ in range(2):
            assert get((f"spray{i}", "mala")) == 401
            failures += 1
            if failures < 8:
                assert get(BETO) == 200, failures
    assert failures == 8
    assert get(BETO) == 401  # the address limit: now everybody from here waits
    time.sleep(1.3)
    assert get(BETO) == 200


# -- 8. timing ---------------------------------------------------------------------

@pytest.mark.serial  # compares timings: other tests running beside it would skew them
def test_bad_logins_take_the_same_time_whether_or_not_the_user_exists(make_server):
    srv = two_spaces(make_server)
    url = "/dav/beta/secreto.txt"

    def timed(who) -> float:
        t = time.perf_counter()
        assert raw(srv, "GET", url, auth=who).status == 401
        return time.perf_counter() - t

    for _ in range(2):  # warm up both paths
        timed(("beto", "clave-mala"))
        timed((f"x{uuid.uuid4().hex[:8]}", "clave-mala"))
    existing, missing, no_space = [], [], []
    for _ in range(5):
        existing.append(timed(("beto", f"mala-{uuid.uuid4().hex[:6]}")))
        missing.append(timed((f"nadie{uuid.uuid4().hex[:8]}", "clave-mala")))
        t = time.perf_counter()
        raw(srv, "GET", f"/dav/z{uuid.uuid4().hex[:8]}/x", auth=("beto", "clave-mala"))
        no_space.append(time.perf_counter() - t)
    m_existing = statistics.median(existing)
    for other in (missing, no_space):
        ratio = statistics.median(other) / m_existing
        assert 0.5 < ratio < 2, (existing, other)


# -- 9. hostile paths --------------------------------------------------------------

HOSTILE = [
    "/dav/alfa/../beta/secreto.txt",
    "/dav/alfa/%2e%2e/beta/secreto.txt",
    "/dav/alfa/%2E%2E/%2E%2E/%2E%2E/%2E%2E/%2E%2E/%2E%2E/etc/passwd",
    "/dav/alfa/../../../../../../etc/passwd",
    "/dav/alfa/..",
    "/dav/alfa/%2e%2e",
    "/dav/alfa/carpeta/./../../beta/secreto.txt",
    "/dav/alfa/..%2fbeta%2fsecreto.txt",
    "/dav/alfa/%2e%2e%2f%2e%2e%2fbeta%2ffiles%2fsecreto.txt",
    "/dav/alfa%2f..%2fbeta/secreto.txt",
    "/dav/alfa/carpeta%2fx.txt",
    "/dav/alfa/..%5cbeta%5csecreto.txt",
    "/dav/alfa/%5c..%5c..%5c..%5cetc%5cpasswd",
    "/dav/alfa/f.txt%00.jpg",
    "/dav/alfa/%00",
    "/dav/alfa/carpeta/x.txt%00",
]


def test_hostile_paths_get_a_clear_4xx_and_never_reach_outside(make_server, tmp_path):
    """Each gets a complete 4xx before anything resolves it. (A path climbing
    above the root used to get 400 headers whose promised body never came, so
    the client hung; ``..`` into /dav/ got a 500 on PUT; ``%2f`` was stored as a
    file literally named ``..%2Fbeta%2Fsecreto.txt``.)"""
    srv = two_spaces(make_server)
    before = {s: state(srv, s) for s in ("alfa", "beta")}
    etc_passwd = Path("/etc/passwd").read_bytes()
    problems = []
    for path in HOSTILE:
        for method, headers, body in [
            ("GET", {}, None), ("HEAD", {}, None), ("PROPFIND", {"Depth": "1"}, None),
            ("PUT", {}, b"escapado"), ("DELETE", {}, None), ("MKCOL", {}, None),
            ("PROPPATCH", {}, PROPPATCH_BODY),
            ("LOCK", {"Timeout": "Second-60"}, LOCK_BODY),
            ("COPY", {"Destination": f"{srv.url}/dav/alfa/copia.txt"}, None),
            ("MOVE", {"Destination": f"{srv.url}/dav/alfa/movido.txt"}, None),
        ]:
            for who in (ANA, None):
                r = raw(srv, method, path, auth=who, headers=headers, body=body, timeout=10)
                if not 400 <= r.status < 500:
                    problems.append((method, path, who and who[0], r))
                if b"SECRETO" in r.body or b"root:" in r.body:
                    problems.append(("leak", method, path, r))
    assert problems == []
    assert {s: state(srv, s) for s in ("alfa", "beta")} == before
    assert Path("/etc/passwd").read_bytes() == etc_passwd
    assert not list(srv.data.glob("**/escapado*")) and not (srv.data / "spaces" / "beta"
                                                             / "secreto.txt").exists()


def test_a_stored_web_page_never_runs_as_the_portal(make_server):
    """The drive shares its address with the portal: an HTML or SVG file a member
    stored must not run scripts with the portal's cookies when opened in a browser
    (sandboxed, not sniffed)."""
    srv = two_spaces(make_server)
    page = b"<html><script>fetch('/operador/')</script></html>"
    assert raw(srv, "PUT", "/dav/alfa/pagina.html", auth=ANA, body=page).status == 201
    for method in ("GET", "HEAD"):
        r = raw(srv, method, "/dav/alfa/pagina.html", auth=ANA)
        assert r.status == 200
        assert "sandbox" in (r.header("Content-Security-Policy") or ""), r.headers
        assert r.header("X-Content-Type-Options") == "nosniff"
    assert raw(srv, "GET", "/dav/alfa/pagina.html", auth=ANA).body == page


def test_symlinks_in_a_space_are_neither_listed_nor_followed(make_server, tmp_path):
    srv = two_spaces(make_server)
    outside = tmp_path / "fuera"
    outside.mkdir()
    (outside / "ajeno.txt").write_bytes(b"AJENO: fuera del espacio\n")
    root = srv.files_root("alfa")
    links = {
        "etc": "/etc",
        "passwd": "/etc/passwd",
        "fuera": str(outside),
        "vecino": "../../beta/files",  # the neighbour's storage, relative
        "alias": "f.txt",  # even one that stays inside
    }
    for name, target in links.items():
        os.symlink(target, root / name)
    os.symlink(outside, root / "carpeta" / "enlace")
    outside_before = tree(outside)
    before = state(srv, "alfa")

    for folder in ("", "carpeta/"):
        r = raw(srv, "PROPFIND", f"/dav/alfa/{folder}", auth=ANA, headers={"Depth": "1"})
        assert r.status == 207
        listed = {h.decode().rstrip("/").rsplit("/", 1)[-1]
                  for h in re.findall(rb"<D:href>([^<]*)</D:href>", r.body)}
        assert not listed & (set(links) | {"enlace"}), listed
    problems = []
    for name in [*links, "carpeta/enlace"]:
        for method, sub, headers, body in [
            ("GET", "", {}, None), ("HEAD", "", {}, None),
            ("PROPFIND", "", {"Depth": "1"}, None),
            ("GET", "/ajeno.txt", {}, None), ("GET", "/passwd", {}, None),
            ("PUT", "", {}, b"pisado"), ("PUT", "/nuevo.txt", {}, b"nuevo"),
            ("MKCOL", "/nueva/", {}, None), ("DELETE", "", {}, None),
            ("DELETE", "/ajeno.txt", {}, None),
            ("PROPPATCH", "", {}, PROPPATCH_BODY),
            ("LOCK", "", {"Timeout": "Second-60"}, LOCK_BODY),
            ("COPY", "", {"Destination": f"{srv.url}/dav/alfa/copia"}, None),
            ("MOVE", "", {"Destination": f"{srv.url}/dav/alfa/movido"}, None),
        ]:
            r = raw(srv, method, f"/dav/alfa/{name}{sub}", auth=ANA, headers=headers,
                    body=body)
            if not 400 <= r.status < 500:
                problems.append((method, name + sub, r))
            if b"AJENO" in r.body or b"root:" in r.body or b"SECRETO" in r.body:
                problems.append(("leak", method, name + sub, r))
    assert problems == []
    assert state(srv, "alfa") == before
    assert tree(outside) == outside_before

    # A folder holding a symlink copies without it and deletes without following
    # it (the delete was a 500 that left the folder half removed).
    r = raw(srv, "COPY", "/dav/alfa/carpeta/", auth=ANA,
            headers={"Destination": f"{srv.url}/dav/alfa/copia/"})
    assert r.status == 201
    assert sorted(os.listdir(root / "copia")) == ["x.txt"]
    assert raw(srv, "DELETE", "/dav/alfa/carpeta/", auth=ANA).status == 204
    assert not (root / "carpeta").exists()
    assert tree(outside) == outside_before
    assert "sin diferencias" in srv.cli("quota", "recount", "alfa").stdout


WINDOWS_NAMES = ["CON", "con", "aux.txt", "AUX.tar.gz", "nombre.", "nombre ", "a:b", "a%3Ab",
                 "LPT1", "com9.log", "que?.txt", "a%7Cb"]


def test_windows_forbidden_names_are_refused_with_400_on_put_mkcol_copy_and_move(make_server):
    srv = two_spaces(make_server)
    before = state(srv, "alfa")
    for name in WINDOWS_NAMES:
        quoted = name.replace(" ", "%20").replace("?", "%3F")
        for method, path, headers, body in [
            ("PUT", f"/dav/alfa/{quoted}", {}, b"x"),
            ("PUT", f"/dav/alfa/carpeta/{quoted}", {}, b"x"),
            ("MKCOL", f"/dav/alfa/{quoted}", {}, None),
            ("MKCOL", f"/dav/alfa/{quoted}/", {}, None),
            ("LOCK", f"/dav/alfa/{quoted}", {"Timeout": "Second-60"}, LOCK_BODY),
            ("COPY", "/dav/alfa/f.txt", {"Destination": f"{srv.url}/dav/alfa/{quoted}"}, None),
            ("MOVE", "/dav/alfa/f.txt", {"Destination": f"{srv.url}/dav/alfa/{quoted}"}, None),
            ("MOVE", "/dav/alfa/carpeta/",
             {"Destination": f"{srv.url}/dav/alfa/{quoted}/"}, None),
        ]:
            r = raw(srv, method, path, auth=ANA, headers=headers, body=body)
            assert r.status == 400, (name, method, path, r)
            text = r.body.decode("utf-8")
            assert any(w in text for w in ("Windows", "punto", "Ruta no válida")), text
    assert state(srv, "alfa") == before
    # The check is about those names, not about writing.
    assert raw(srv, "PUT", "/dav/alfa/consola.txt", auth=ANA, body=b"ok").status == 201
    assert raw(srv, "MKCOL", "/dav/alfa/nombre.final/", auth=ANA).status == 201
