"""Hostile paths on the live drive: dot segments, encoded separators, NUL and the
like get a clear 4xx and never reach outside the space; symlinks placed in storage are
neither listed nor followed; a stored web page never runs as the portal; names Windows
cannot use are refused."""

from __future__ import annotations

import os
import re
from pathlib import Path

from drive_helpers import ANA, LOCK_BODY, PROPPATCH_BODY, raw, state, tree, two_spaces

# -- hostile paths --------------------------------------------------------------

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
