"""Two of the portal's single rules: one CSV writer that never hands a formula to the
spreadsheet, and one list of reserved space names kept in step with every route."""

from __future__ import annotations

import pytest
from portal_helpers import PASSWORD

# -- CSV exports: one writer, never a formula ---------------------------------------------

FORMULAS = ['=HYPERLINK("http://evil.example","Factura")', "+cmd|' /C calc'!A0",
            "-2+3+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1",
            "\n=1+1", "\uff1dHYPERLINK(\"http://evil.example\")", "\uff0b1+1", "\uff0d1+1",
            "\uff20SUM(1)", "\ufe661+1", "\u22121+1"]


@pytest.mark.parametrize("text", FORMULAS)
def test_the_csv_writer_turns_every_formula_start_into_text(text):
    from spaces.core import csvexport

    out = "".join(csvexport.chunks(["a", "b"], [[text, "-12.50"]], bom=False))
    import csv
    import io

    row = list(csv.reader(io.StringIO(out)))[1]
    assert row == ["'" + text, "-12.50"]


def test_only_the_one_csv_writer_writes_csv():
    """Every export goes through spaces.core.csvexport: no other module of the product
    builds CSV on its own (the CFDI export once did, and let formulas through)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    uses_csv = re.compile(r"^\s*(import csv|from csv import)\b", re.MULTILINE)
    writers = [str(p.relative_to(root)) for pkg in ("spaces", "portal", "davserver",
                                                     "resguardo")
               for p in (root / pkg).rglob("*.py")
               if uses_csv.search(p.read_text(encoding="utf-8"))]
    assert writers == ["spaces/core/csvexport.py"]


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


def test_cfdi_export_never_hands_a_formula_to_the_spreadsheet(portal, tmp_path):
    import csv
    import io

    from portal_helpers import Browser

    from spaces.access import service
    from spaces.cfdi import index as cfdi_index
    from spaces.files import layout

    st, db = portal.settings, portal.db
    info = service.create_space(st, db, "acme", "4G")
    service.add_member(db, "acme", "ana", "clave-de-ana-1", "admin")
    root = layout.space_dir(st, "acme") / "files"
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

def test_every_route_segment_of_the_portal_and_server_is_a_reserved_space_name(portal):
    import re

    from spaces.access import service

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
