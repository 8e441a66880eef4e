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


# -- CSV exports: one writer, never a formula ---------------------------------------------

FORMULAS = ['=HYPERLINK("http://evil.example","Factura")', "+cmd|' /C calc'!A0",
            "-2+3+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1",
            "\n=1+1", "\uff1dHYPERLINK(\"http://evil.example\")", "\uff0b1+1", "\uff0d1+1",
            "\uff20SUM(1)", "\ufe661+1", "\u22121+1"]


@pytest.mark.parametrize("text", FORMULAS)
def test_the_csv_writer_turns_every_formula_start_into_text(text):
    from spaces import csvexport

    out = "".join(csvexport.chunks(["a", "b"], [[text, "-12.50"]], bom=False))
    import csv
    import io

    row = list(csv.reader(io.StringIO(out)))[1]
    assert row == ["'" + text, "-12.50"]


def test_only_the_one_csv_writer_writes_csv():
    """Every export goes through spaces.csvexport: no other module of the product
    builds CSV on its own (the CFDI export once did, and let formulas through)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    uses_csv = re.compile(r"^\s*(import csv|from csv import)\b", re.MULTILINE)
    writers = [str(p.relative_to(root)) for pkg in ("spaces", "portal", "davserver",
                                                     "resguardo")
               for p in (root / pkg).rglob("*.py")
               if uses_csv.search(p.read_text(encoding="utf-8"))]
    assert writers == ["spaces/csvexport.py"]


def _stamped_cfdi(tmp_path, emisor_nombre: str, receptor_nombre: str) -> bytes:
    import re
    from xml.sax.saxutils import quoteattr

    from test_cfdi import one_cfdi

    xml, _ = one_cfdi(tmp_path)
    text = xml.decode("utf-8")
    text, n = re.subn(r'(<cfdi:Emisor\b[^>]*\bNombre=)"[^"]*"',
                      lambda m: m.group(1) + quoteattr(emisor_nombre), text, count=1)
    text, k = re.subn(r'(<cfdi:Receptor\b[^>]*\bNombre=)"[^"]*"',
                      lambda m: m.group(1) + quoteattr(receptor_nombre), text, count=1)
    assert n == 1 and k == 1
    return text.encode("utf-8")


def test_cfdi_export_never_hands_a_formula_to_the_spreadsheet(portal, tmp_path):  # noqa: F811
    import csv
    import io

    from portal_helpers import Browser

    from spaces import cfdi_index, service, storage

    st, db = portal.settings, portal.db
    info = service.create_space(st, db, "acme", "4G")
    service.add_member(db, "acme", "ana", "clave-de-ana-1", "admin")
    root = storage.space_dir(st, "acme") / "files"
    (root / "f.xml").write_bytes(_stamped_cfdi(tmp_path, FORMULAS[0], FORMULAS[7]))
    cfdi_index.reindex(st, db, info.id, root)
    b = Browser(portal.app)
    b.post("/cuenta/entrar-unidad", {"space": "acme", "username": "ana",
                                     "password": "clave-de-ana-1"},
           form_page="/cuenta/entrar-unidad")
    r = b.c.get("/espacios/acme/cfdi?formato=csv")
    assert r.status_code == 200
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True).lstrip("\ufeff"))))
    assert [(x["emisor_nombre"], x["receptor_nombre"]) for x in rows] == [
        ("'" + FORMULAS[0], "'" + FORMULAS[7])]


# -- reserved names --------------------------------------------------------------------------

def test_every_route_segment_of_the_portal_and_server_is_a_reserved_space_name(portal):  # noqa: F811
    import re

    from spaces import service

    valid = re.compile(r"^[a-z0-9][a-z0-9_-]{1,62}$")
    segments = {seg for rule in portal.app.url_map.iter_rules()
                for seg in rule.rule.split("/") if seg and "<" not in seg}
    segments |= {"api", "dav", "healthz", "metrics"}  # the dispatcher's own
    missing = sorted(s for s in segments if valid.match(s)
                     and s not in service.RESERVED_SPACE_NAMES)
    assert missing == []


@pytest.mark.parametrize("name", ["entrar", " Healthz "])
def test_api_cli_and_sign_up_refuse_a_reserved_space_name(make_server, name):
    import requests

    srv = make_server().start()
    p = srv.cli("space", "create", name, "--tier", "4G", check=False)
    assert p.returncode == 1 and "reservado" in p.stderr, p.stderr
    token = srv.cli("admin", "token", "create", "ops").stdout.strip().splitlines()[-1]
    r = requests.post(f"{srv.url}/api/v1/spaces", json={"name": name.strip().lower(),
                                                        "tier": "4G"},
                      headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 400 and "reservado" in r.json()["error"]["message"], r.text
    s = requests.Session()
    page = s.get(f"{srv.url}/cuenta/registro", timeout=30).text
    import re

    csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    r = s.post(f"{srv.url}/cuenta/registro", data={
        "csrf_token": csrf, "username": name, "email": "x@empresa.mx", "password": PASSWORD},
        timeout=30)
    assert "reservado" in r.text and "Revise su correo" not in r.text
    assert "reservado" not in srv.cli("space", "list").stdout
    assert srv.cli("space", "list").stdout.strip() == ""
