"""Names that Windows cannot use, cannot tell apart, or that show as something
else never enter a space — through any door: WebDAV (PUT, MKCOL, COPY, MOVE,
LOCK on a new name), the web drive (upload, new folder, rename, move), trash
and version restore. (Backup restore: tests/test_backup.py.)"""

from __future__ import annotations

import json
import threading
import unicodedata
from urllib.parse import quote

import pytest
from drive_helpers import ANA, LOCK_BODY, raw, state, tree
from web_drive_helpers import WebDrive

#: The whole class of Windows device names: any case, any extension, the
#: superscript digits Windows reads as 1 2 3, spaces before the dot.
RESERVED = ["COM0", "LPT0.txt", "COM¹.txt", "LPT²", "com³.log", "Lpt9.tar.gz", "CONIN$",
            "conout$.txt", "nul .tar.gz", "AUX .txt", "prn..txt", "Con.docx"]
#: Unicode format characters and other invisible ones: right-to-left override,
#: zero-width space/joiner/non-joiner, BOM, word joiner, soft hyphen, line and
#: paragraph separators, an isolate, DEL and a C1 control; then characters of
#: other categories that show as nothing (combining grapheme joiner, Hangul
#: filler, variation selector, blank braille) and a trailing no-break space.
INVISIBLE = ["factura\u202efdp.exe", "a\u200bb.txt", "\ufeffx.txt", "x\u200d.txt",
             "x\u200c.txt", "a\u2060b.txt", "a\u00adb.txt", "a\u2028b.txt", "a\u2029b.txt",
             "a\u2066b.txt", "a\x7fb.txt", "a\x85b.txt", "a\u034fb.txt", "\u3164.txt",
             "a\ufe0fb.txt", "a\u2800b.txt", "factura.pdf\u00a0"]


def setup(make_server):
    srv = make_server().start()
    srv.create_space("alfa", "4G")
    srv.add_user("alfa", *ANA, role="admin")
    assert raw(srv, "PUT", "/dav/alfa/f.txt", auth=ANA, body=b"f\n").status == 201
    assert raw(srv, "MKCOL", "/dav/alfa/carpeta/", auth=ANA).status == 201
    assert raw(srv, "PUT", "/dav/alfa/carpeta/x.txt", auth=ANA, body=b"x\n").status == 201
    return srv, WebDrive(srv, "alfa", *ANA)


def dav_attempts(srv, name: str) -> list[tuple[str, str, dict[str, str], bytes | None]]:
    q = quote(name)
    return [
        ("PUT", f"/dav/alfa/{q}", {}, b"x"),
        ("PUT", f"/dav/alfa/carpeta/{q}", {}, b"x"),
        ("MKCOL", f"/dav/alfa/{q}/", {}, None),
        ("LOCK", f"/dav/alfa/{q}", {"Timeout": "Second-60"}, LOCK_BODY.encode()),
        ("COPY", "/dav/alfa/f.txt", {"Destination": f"{srv.url}/dav/alfa/{q}"}, None),
        ("COPY", "/dav/alfa/carpeta/", {"Destination": f"{srv.url}/dav/alfa/{q}/"}, None),
        ("MOVE", "/dav/alfa/f.txt", {"Destination": f"{srv.url}/dav/alfa/{q}"}, None),
        ("MOVE", "/dav/alfa/carpeta/", {"Destination": f"{srv.url}/dav/alfa/{q}/"}, None),
    ]


def web_attempts(web: WebDrive, name: str) -> list[tuple[str, object]]:
    return [
        ("upload", lambda: web.upload("/", name, b"x")),
        ("upload into a folder", lambda: web.upload("/carpeta", name, b"x")),
        ("mkdir", lambda: web.action("carpeta", nombre=name)),
        ("rename file", lambda: web.action("renombrar", ruta="/f.txt", nombre=name)),
        ("rename folder", lambda: web.action("renombrar", ruta="/carpeta", nombre=name)),
    ]


@pytest.mark.parametrize("names,words", [(RESERVED, ("reservado",)),
                                         (INVISIBLE, ("invisibles", "Windows no admite",
                                                      "terminar en punto ni en espacio"))],
                         ids=["windows-reserved", "invisible-characters"])
def test_names_windows_reserves_or_that_hide_characters_are_refused_on_every_door(
        make_server, names, words):
    srv, web = setup(make_server)
    before = state(srv, "alfa")
    for name in names:
        for method, path, headers, body in dav_attempts(srv, name):
            r = raw(srv, method, path, auth=ANA, headers=headers, body=body)
            assert r.status == 400, (name, method, path, r)
            assert any(w in r.body.decode() for w in words), (name, method, r)
        for door, attempt in web_attempts(web, name):
            r = attempt()
            assert r.status_code == 400, (name, door, r.status_code)
            assert any(w in r.text for w in words), (name, door, r.text[:300])
    assert state(srv, "alfa") == before
    # The rule is about those names, not about names that merely resemble them.
    for ok in ("COM10.txt", "consola.txt", "LPT⁴.txt", "CONIN.txt", "auxiliar", "nulo.xml",
               "Año ñandú €.txt", "👍.txt"):
        assert raw(srv, "PUT", f"/dav/alfa/{quote(ok)}", auth=ANA, body=b"ok").status == 201, ok


def test_a_name_that_differs_from_a_sibling_only_in_case_or_accent_spelling_is_refused(
        make_server):
    srv, web = setup(make_server)
    root = srv.files_root("alfa")
    assert raw(srv, "PUT", "/dav/alfa/Factura.txt", auth=ANA, body=b"original").status == 201
    assert raw(srv, "PUT", "/dav/alfa/otro.txt", auth=ANA, body=b"otro").status == 201
    # A folder name written in NFD by a client before names were normalised.
    (root / unicodedata.normalize("NFD", "Año")).mkdir()
    before = state(srv, "alfa")
    for twin in ("factura.txt", "FACTURA.TXT", "fACTURA.txt", "año", "AÑO",
                 unicodedata.normalize("NFD", "AÑO")):
        q = quote(twin)
        for method, path, headers, body in [
            ("PUT", f"/dav/alfa/{q}", {}, b"x"),
            ("MKCOL", f"/dav/alfa/{q}/", {}, None),
            ("LOCK", f"/dav/alfa/{q}", {"Timeout": "Second-60"}, LOCK_BODY.encode()),
            ("COPY", "/dav/alfa/otro.txt", {"Destination": f"{srv.url}/dav/alfa/{q}"}, None),
            ("MOVE", "/dav/alfa/otro.txt", {"Destination": f"{srv.url}/dav/alfa/{q}"}, None),
            ("MOVE", "/dav/alfa/carpeta/", {"Destination": f"{srv.url}/dav/alfa/{q}/"}, None),
        ]:
            r = raw(srv, method, path, auth=ANA, headers=headers, body=body)
            assert r.status == 409, (twin, method, path, r)
            assert "Windows no distingue" in r.body.decode(), r
        for door, attempt in [
            ("upload", lambda t=twin: web.upload("/", t, b"x")),
            ("mkdir", lambda t=twin: web.action("carpeta", nombre=t)),
            ("rename", lambda t=twin: web.action("renombrar", ruta="/otro.txt", nombre=t)),
        ]:
            r = attempt()
            assert r.status_code == 409, (twin, door, r.status_code)
            assert "Windows no distingue" in r.text, (twin, door)
    # A no-break space reads as a space.
    assert raw(srv, "PUT", "/dav/alfa/" + quote("Pago A.txt"), auth=ANA, body=b"p").status == 201
    r = raw(srv, "PUT", "/dav/alfa/" + quote("pago\u00a0a.txt"), auth=ANA, body=b"q")
    assert r.status == 409, r
    # Moving a file into a folder that holds its twin.
    assert raw(srv, "PUT", "/dav/alfa/carpeta/FACTURA.txt", auth=ANA, body=b"c").status == 201
    before = state(srv, "alfa")
    r = web.action("mover", ruta="/carpeta/FACTURA.txt", destino="/")
    assert r.status_code == 409
    r = raw(srv, "MOVE", "/dav/alfa/carpeta/FACTURA.txt", auth=ANA,
            headers={"Destination": f"{srv.url}/dav/alfa/FACTURA.txt"})
    assert r.status == 409, r
    assert state(srv, "alfa") == before
    # A name may change its own case (Explorer's rename does that).
    r = raw(srv, "MOVE", "/dav/alfa/Factura.txt", auth=ANA,
            headers={"Destination": f"{srv.url}/dav/alfa/factura.txt"})
    assert r.status == 201, r
    r = web.action("renombrar", ruta="/factura.txt", nombre="FACTURA.txt")
    assert r.status_code == 200, r.text[:300]
    assert (root / "FACTURA.txt").read_bytes() == b"original"
    assert sorted(p.name for p in root.iterdir() if p.is_file()) == [
        "FACTURA.txt", "Pago A.txt", "f.txt", "otro.txt"]


#: Names that look like "Factura.txt" or "carpeta" in Explorer and the web
#: drive without being the same letters: Cyrillic а, х and с, Armenian ս,
#: Greek α and ϲ, Latin alpha ɑ, full-width Ｆ, mathematical bold 𝐅.
LOOK_ALIKES = ["F\u0430ctura.txt", "Fact\u057dra.txt", "Factur\u0251.txt", "\uff26actura.txt",
               "\U0001d405actura.txt", "Factura.t\u0445t", "\u0441arpeta", "carpet\u03b1",
               "\u03f2arpeta", "carpet\u0430"]


@pytest.mark.db
def test_a_name_that_looks_like_a_siblings_is_refused_on_every_door(make_server):
    """Windows tells Cyrillic а from Latin a, but a person reading Explorer,
    the web drive or the audit log cannot: a planted «Fаctura.txt» beside
    «Factura.txt» gets the wrong one opened, signed or deleted. Unicode's
    confusables (UTS #39) decide, after NFKC (full-width, mathematical letters,
    ligatures)."""
    srv, web = setup(make_server)
    assert raw(srv, "PUT", "/dav/alfa/Factura.txt", auth=ANA, body=b"original").status == 201
    before = state(srv, "alfa")
    for twin in LOOK_ALIKES:
        for method, path, headers, body in dav_attempts(srv, twin):
            if "/carpeta/" in path and method == "PUT":
                continue  # no sibling there
            if method == "MOVE" and path == "/dav/alfa/carpeta/" and "ctura" not in twin:
                continue  # renaming a name to its own look-alike leaves no twin
            r = raw(srv, method, path, auth=ANA, headers=headers, body=body)
            assert r.status == 409, (twin, method, path, r)
            assert "se confunde" in r.body.decode(), (twin, r)
        for door, attempt in web_attempts(web, twin):
            if door == "upload into a folder" or (door == "rename folder"
                                                  and "ctura" not in twin):
                continue
            r = attempt()
            assert r.status_code == 409, (twin, door, r.status_code)
            assert "se confunde" in r.text, (twin, door)
    assert state(srv, "alfa") == before
    # Other scripts stay usable where nothing looks like them.
    for name in ("Фактура.txt", "παράδειγμα.txt", "請求書.txt", "Año.txt"):
        assert raw(srv, "PUT", "/dav/alfa/" + quote(name), auth=ANA, body=b"x").status == 201


@pytest.mark.db
def test_simultaneous_creation_of_two_twins_lets_exactly_one_in(make_server):
    srv, _ = setup(make_server)
    for i in range(6):
        names = [f"Doc{i}.txt", f"doc{i}.TXT", f"DOC{i}.txt"]
        barrier = threading.Barrier(len(names))
        statuses: list[int] = []

        def put(name: str) -> None:
            barrier.wait()
            statuses.append(raw(srv, "PUT", f"/dav/alfa/{name}", auth=ANA,
                                body=b"x" * 1000).status)

        threads = [threading.Thread(target=put, args=(n,)) for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(statuses) == [201, 409, 409], (i, statuses)
    created = [n for n in tree(srv.files_root("alfa")) if n.lower().startswith("doc")]
    assert len(created) == 6, created
    assert "sin diferencias" in srv.cli("quota", "recount", "alfa").stdout


@pytest.mark.db
def test_trash_and_version_restore_never_create_a_twin(make_server):
    srv, web = setup(make_server)
    root = srv.files_root("alfa")
    for body in (b"uno", b"dos"):
        assert raw(srv, "PUT", "/dav/alfa/Libro.xlsx", auth=ANA, body=body).status in (201, 204)
    assert raw(srv, "MKCOL", "/dav/alfa/Sub/", auth=ANA).status == 201
    assert raw(srv, "PUT", "/dav/alfa/Sub/n.txt", auth=ANA, body=b"n").status == 201
    versions = json.loads(srv.cli("versions", "list", "alfa", "/Libro.xlsx", "--json").stdout)
    assert raw(srv, "DELETE", "/dav/alfa/Libro.xlsx", auth=ANA).status == 204
    assert raw(srv, "DELETE", "/dav/alfa/Sub/n.txt", auth=ANA).status == 204
    assert raw(srv, "DELETE", "/dav/alfa/Sub/", auth=ANA).status == 204
    assert raw(srv, "PUT", "/dav/alfa/LIBRO.xlsx", auth=ANA, body=b"otro").status == 201
    assert raw(srv, "MKCOL", "/dav/alfa/SUB/", auth=ANA).status == 201
    items = {t["path"]: t["id"]
             for t in json.loads(srv.cli("trash", "list", "alfa", "--json").stdout)}
    # The trash gives the file back under a name that is not a twin ...
    out = srv.cli("trash", "restore", "alfa", str(items["/Libro.xlsx"])).stdout
    assert "Libro (restaurado).xlsx" in out, out
    assert (root / "Libro (restaurado).xlsx").read_bytes() == b"dos"
    # ... and never re-creates a folder beside its twin.
    r = srv.cli("trash", "restore", "alfa", str(items["/Sub/n.txt"]), check=False)
    assert r.returncode == 1 and "Windows no distingue" in r.stderr, r.stderr
    r = web.action(f"papelera/{items['/Sub/n.txt']}/restaurar")
    assert r.status_code == 409 and "Windows no distingue" in r.text
    assert not (root / "Sub").exists()
    # A version of a file whose place a twin took is not restored beside it.
    (root / "Libro (restaurado).xlsx").rename(root / "Otro.xlsx")  # its name is free again
    r = srv.cli("versions", "restore", "alfa", str(versions[0]["id"]), check=False)
    assert r.returncode == 1 and "Windows no distingue" in r.stderr, r.stderr
    assert sorted(p.name for p in root.iterdir()) == sorted(
        ["f.txt", "carpeta", "LIBRO.xlsx", "Otro.xlsx", "SUB"])
