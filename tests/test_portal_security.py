"""The portal's own attack surface, through Flask's test client on a real
database with a real SMTP server: redirects, sessions and their revocation,
authority re-checked on every request, anonymous enumeration, CSV exports,
reserved names and RFC ownership."""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

import pytest
from portal_helpers import PASSWORD, Portal, sign_up

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
        from spaces.access import service

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


def test_cfdi_export_never_hands_a_formula_to_the_spreadsheet(portal, tmp_path):  # noqa: F811
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

def test_every_route_segment_of_the_portal_and_server_is_a_reserved_space_name(portal):  # noqa: F811
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


# -- sessions: authority re-read on every request, revocable ---------------------------------

MEMBER_PW = "clave-de-jefa-1"


def _acme(p: Portal) -> None:
    """Space 'acme' (4G) made like the CLI makes it, with an admin 'jefa', an
    editor 'ed', a file, share links on and one link."""
    from spaces.access import service
    from spaces.files import layout, shares

    info = service.create_space(p.settings, p.db, "acme", "4G")
    service.add_member(p.db, "acme", "jefa", MEMBER_PW, "admin")
    service.add_member(p.db, "acme", "ed", MEMBER_PW, "editor")
    root = layout.space_dir(p.settings, "acme") / "files"
    (root / "doc").mkdir()
    (root / "doc" / "a.txt").write_bytes(b"secreto")
    shares.set_enabled(p.db, info.id, True)


def _member_browser(p: Portal, user: str, door: str):
    from portal_helpers import Browser

    b = Browser(p.app)
    r = b.post(door, {"space": "acme", "username": user, "password": MEMBER_PW},
               form_page=door, follow=False)
    assert r.status_code == 302, b.text
    return b


def _thief(p: Portal, victim) -> object:
    """Another browser holding a copy of ``victim``'s session cookie."""
    from portal_helpers import Browser

    t = Browser(p.app)
    t.c.set_cookie("resguardo_sesion", victim.c.get_cookie("resguardo_sesion").value)
    return t


#: What a space's admin and editor can read through the portal and the web drive.
READS = ["/espacios/acme/", "/espacios/acme/cfdi", "/espacios/acme/cfdi?formato=csv",
         "/espacios/acme/cfdi?formato=zip", "/espacios/acme/bitacora",
         "/espacios/acme/bitacora?formato=csv", "/espacios/acme/resguardo-windows.reg",
         "/unidad/acme/", "/unidad/acme/?ruta=/doc", "/unidad/acme/descargar?ruta=/doc/a.txt",
         "/unidad/acme/descargar?ruta=/doc", "/unidad/acme/papelera",
         "/unidad/acme/versiones?ruta=/doc/a.txt", "/unidad/acme/enlaces"]


def _reads(b, paths=READS) -> dict[str, int]:
    return {path: b.c.get(path).status_code for path in paths}


def _writes(p: Portal, b) -> None:
    """Try every kind of change with the session's own CSRF token."""
    csrf = b.token(b.get("/cuenta/entrar").get_data(as_text=True))
    b.c.post("/unidad/acme/subir?carpeta=/&nombre=intruso.txt", data=b"x",
             headers={"X-CSRFToken": csrf, "Content-Type": "application/octet-stream"})
    for path, form in (("/unidad/acme/carpeta", {"carpeta": "/", "nombre": "intrusa"}),
                       ("/unidad/acme/borrar", {"ruta": "/doc/a.txt"}),
                       ("/unidad/acme/enlaces/crear", {"ruta": "/doc", "dias": "7"}),
                       ("/unidad/acme/enlaces/activar", {"activar": "0"}),
                       ("/espacios/acme/usuarios", {"username": "cuate", "email": "c@x.mx",
                                                    "role": "admin"})):
        b.c.post(path, data={"csrf_token": csrf, **form})


def _untouched(p: Portal) -> None:
    from spaces.access import service
    from spaces.commerce import space_admin
    from spaces.files import layout, shares

    root = layout.space_dir(p.settings, "acme") / "files"
    assert sorted(x.name for x in root.iterdir()) == ["doc"]
    assert (root / "doc" / "a.txt").read_bytes() == b"secreto"
    assert [m.username for m in space_admin.member_rows(p.db, "acme")
            if m.username == "cuate"] == []
    space = service.get_space(p.db, "acme")
    assert shares.list_links(p.db, space.id) == [] and shares.enabled(p.db, space.id)


def _locked_out(p: Portal, b) -> None:
    got = _reads(b)
    assert all(code in (302, 401, 404) for code in got.values()), got
    _writes(p, b)
    _untouched(p)


REVOCATIONS = ["removed", "password changed (resguardo user passwd)",
               "password set through its e-mailed link", "space suspended, then reactivated",
               "beyond the plan's users after a downgrade"]


@pytest.mark.db
@pytest.mark.parametrize("why", REVOCATIONS)
@pytest.mark.parametrize("user,door", [("jefa", "/cuenta/entrar-unidad"),
                                       ("ed", "/unidad/entrar")])
def test_a_revoked_member_old_session_reads_and_changes_nothing(portal, why, user, door):  # noqa: F811
    from spaces.access import service

    _acme(portal)
    b = _member_browser(portal, user, door)
    before = _reads(b)
    assert before["/unidad/acme/descargar?ruta=/doc/a.txt"] == 200
    if user == "jefa":
        assert before["/espacios/acme/cfdi?formato=zip"] == 200
    stolen = _thief(portal, b)
    if why.startswith("beyond"):
        from sqlalchemy import update

        from spaces.core.models import Space

        # members are admitted oldest first: jefa, ed, then the newest
        service.add_member(portal.db, "acme", "nueva", MEMBER_PW, "admin")
        with portal.db.session() as s:
            s.execute(update(Space).where(Space.name == "acme").values(
                max_users=1 if user == "ed" else 0))
    elif why.startswith("removed"):
        service.remove_member(portal.db, "acme", user)
    elif why.startswith("password changed"):
        service.set_password(portal.db, "acme", user, "otra-clave-99")
    elif why.startswith("password set"):
        from spaces.commerce import accounts, space_admin

        member_id = next(m.id for m in space_admin.member_rows(portal.db, "acme")
                         if m.username == user)
        token = accounts.issue_token(portal.db, portal.settings, "member", member_id=member_id)
        other = portal.browser()
        other.post(f"/acceso/{token}", {"password": "otra-clave-99", "confirm": "otra-clave-99"},
                   form_page=f"/acceso/{token}")
        assert "otra-clave-99" not in other.text
    else:
        service.set_status(portal.db, "acme", "suspended")
        _locked_out(portal, stolen)
        service.set_status(portal.db, "acme", "active")
    _locked_out(portal, stolen)
    _locked_out(portal, b)


@pytest.mark.db
def test_logging_out_ends_every_copy_of_the_session(portal):  # noqa: F811
    _acme(portal)
    for user, door in (("jefa", "/cuenta/entrar-unidad"), ("ed", "/unidad/entrar")):
        b = _member_browser(portal, user, door)
        stolen = _thief(portal, b)
        assert stolen.c.get("/unidad/acme/").status_code == 200
        b.post("/cuenta/salir", {}, form_page="/unidad/acme/")
        _locked_out(portal, stolen)
        again = _member_browser(portal, user, door)  # a new login works at once
        assert again.c.get("/unidad/acme/").status_code == 200


@pytest.mark.db
def test_an_account_session_dies_with_logout_and_password_changes(portal):  # noqa: F811
    from portal_helpers import link_in

    b = sign_up(portal)
    b.post("/espacio-gratis", {}, form_page="/")
    assert b.c.get("/espacios/despacho/").status_code == 200

    def copy():
        t = _thief(portal, b)
        assert t.c.get("/cuenta/").status_code == 200
        return t

    def dead(t) -> None:
        r = t.c.get("/cuenta/")
        assert r.status_code == 302 and "/cuenta/entrar" in r.headers["Location"]
        assert t.c.get("/espacios/despacho/").status_code == 404
        assert t.c.get("/espacios/despacho/cfdi?formato=zip").status_code == 404

    def login(password: str = PASSWORD) -> None:
        b.post("/cuenta/entrar", {"login": "despacho", "password": password},
               form_page="/cuenta/entrar")
        assert b.c.get("/cuenta/").status_code == 200

    stolen = copy()
    b.post("/cuenta/salir", {}, form_page="/")
    dead(stolen)
    login()
    stolen = copy()
    b.post("/cuenta/", {"pw-current": PASSWORD, "pw-password": "otra-clave-33",
                        "pw-submit": "1"}, form_page="/cuenta/")
    assert "Contraseña cambiada" in b.text
    dead(stolen)
    assert b.c.get("/cuenta/").status_code == 200  # who changed it stays in
    stolen = copy()
    b2 = portal.browser()
    b2.post("/cuenta/olvide", {"email": "ana@despacho.mx"}, form_page="/cuenta/olvide")
    path = link_in(portal.smtp.last("Restablecer", "ana@despacho.mx"), "/cuenta/restablecer/")
    b2.post(path, {"password": "nueva-clave-22", "confirm": "nueva-clave-22"}, form_page=path)
    dead(stolen)
    dead(b)
    assert b2.c.get("/cuenta/").status_code == 200


@pytest.mark.db
def test_a_suspended_space_keeps_its_documents_even_from_its_owner_account(portal):  # noqa: F811
    from spaces.access import service

    b = sign_up(portal)
    b.post("/espacio-gratis", {}, form_page="/")
    assert b.c.get("/espacios/despacho/cfdi?formato=zip").status_code == 200
    service.set_status(portal.db, "despacho", "suspended")
    for path in ("/espacios/despacho/cfdi", "/espacios/despacho/cfdi?formato=zip",
                 "/espacios/despacho/cfdi?formato=csv"):
        r = b.c.get(path)
        assert r.status_code == 403 and "suspendido" in r.get_data(as_text=True), path
    assert b.c.get("/espacios/despacho/").status_code == 200  # the owner sees its state
    service.set_status(portal.db, "despacho", "active")
    assert b.c.get("/espacios/despacho/cfdi?formato=zip").status_code == 200


@pytest.mark.db
def test_an_account_is_paused_whether_named_by_username_or_email(portal):  # noqa: F811
    sign_up(portal)
    b = portal.browser()
    for login in ("despacho", "ana@DESPACHO.MX", " Despacho ", "ana@despacho.mx",
                  "DESPACHO"):  # [portal] max_login_failures = 5
        r = b.post("/cuenta/entrar", {"login": login, "password": "mala-clave-0"},
                   form_page="/cuenta/entrar")
        assert r.status_code == 200
    for login in ("ana@despacho.mx", "despacho"):
        r = b.post("/cuenta/entrar", {"login": login, "password": PASSWORD},
                   form_page="/cuenta/entrar")
        assert r.status_code == 429 and "Demasiados intentos" in b.text


# -- anonymous enumeration: sign-up and password reset -------------------------------------

def _answer(b) -> str:
    """The page without the e-mail address and the CSRF token (which differ)."""
    import re

    text = re.sub(r'value="[^"]*"', "", b.text)
    return re.sub(r"[\w.+-]+@[\w.-]+", "CORREO", text)


def _medians_ms(n: int, *fns) -> list[float]:
    """The median time of each of ``fns`` over ``n`` rounds, taken in turns (one
    of each per round), so a machine that gets busier slows them all alike."""
    import statistics
    import time

    times: list[list[float]] = [[] for _ in fns]
    for i in range(n):
        for fn, t in zip(fns, times, strict=True):
            t0 = time.perf_counter()
            fn(i)
            t.append((time.perf_counter() - t0) * 1000)
    return [statistics.median(t) for t in times]


#: How far apart two medians may be and still count as "the same work": the
#: difference once measured was tenfold (5-22 ms against 41-94 ms).
SAME_WORK = (0.4, 2.5)


@pytest.mark.db
def test_sign_up_answers_alike_and_costs_alike_whatever_exists(portal):  # noqa: F811
    """A username taken by an account or by a space made with the CLI, and an
    e-mail that already has an account, get the page a new sign-up gets, after
    the same work (argon2 always runs; one e-mail always goes out): only the
    mailbox owner learns which it was."""
    from spaces.access import service

    sign_up(portal)  # account 'despacho' with ana@despacho.mx
    service.create_space(portal.settings, portal.db, "beta", "4G")  # made by the CLI
    b = portal.browser()

    def attempt(username: str, email: str) -> str:
        b.post("/cuenta/registro", {"username": username, "email": email,
                                    "password": PASSWORD}, form_page="/cuenta/registro")
        return _answer(b)

    new = attempt("nuevo", "nuevo@x.mx")
    assert "Revise su correo" in new
    assert attempt("beta", "alguien@x.mx") == new  # a space made by the CLI
    assert attempt("despacho", "otro@x.mx") == new  # an account's username
    assert attempt("intruso", "ana@despacho.mx") == new  # a registered e-mail
    assert portal.smtp.find("no está disponible", "alguien@x.mx")
    assert portal.smtp.find("no está disponible", "otro@x.mx")
    assert portal.smtp.find("Ya tiene una cuenta", "ana@despacho.mx")
    from spaces.commerce import accounts

    assert {a.username for a in accounts.list_accounts(portal.db)} == {"despacho", "nuevo"}
    # the same work: medians of many tries, a generous margin (argon2 dominates)
    fresh, taken_space, taken_user, known_email = _medians_ms(
        11, lambda i: attempt(f"fresco{i}", f"fresco{i}@x.mx"),
        lambda i: attempt("beta", f"otro{i}@x.mx"),
        lambda i: attempt("despacho", f"mas{i}@x.mx"),
        lambda i: attempt(f"otro{i}", "ana@despacho.mx"))
    for other in (taken_space, taken_user, known_email):
        assert SAME_WORK[0] < other / fresh < SAME_WORK[1], (fresh, taken_space, taken_user,
                                                              known_email)


@pytest.mark.db
def test_password_reset_answers_alike_and_costs_alike_for_unknown_addresses(portal):  # noqa: F811
    sign_up(portal)
    b = portal.browser()

    def ask(email: str) -> str:
        b.post("/cuenta/olvide", {"email": email}, form_page="/cuenta/olvide")
        return _answer(b)

    assert ask("nadie@x.mx") == ask("ana@despacho.mx")
    unknown, known = _medians_ms(11, lambda i: ask(f"nadie{i}@x.mx"),
                                 lambda i: ask("ana@despacho.mx"))
    assert SAME_WORK[0] < unknown / known < SAME_WORK[1], (unknown, known)


# -- an RFC belongs to one account, proven by its Constancia de Situación Fiscal -------------

RFC_A = "ABC680524P73"  # a persona moral with a valid check digit
PDF = b"%PDF-1.4\n% Constancia de Situacion Fiscal (de prueba)\n%%EOF\n"


def _operator(p: Portal):
    from spaces.commerce import accounts

    accounts.create_operator(p.db, "root", "ops@resguardo.mx", "operador-seguro-1")
    op = p.browser()
    op.post("/cuenta/entrar", {"login": "root", "password": "operador-seguro-1"},
            form_page="/cuenta/entrar")
    return op


def _submit_constancia(b, rfc: str, pdf: bytes = PDF, name: str = "constancia.pdf"):
    import io

    return b.post("/cuenta/rfc", {"rfc": rfc, "constancia": (io.BytesIO(pdf), name)},
                  form_page="/cuenta/", content_type="multipart/form-data")


def _buy_named_by_rfc(p: Portal, b) -> str:
    b.post("/planes", {"tier": "4G", "period": "monthly", "naming": "rfc"}, form_page="/planes")
    return b.text


def _review(p: Portal, op, username: str, action: str, reason: str = "") -> object:
    from spaces.commerce import accounts

    account = next(a for a in accounts.list_accounts(p.db, username)
                   if a.username == username)
    return op.post(f"/operador/rfc/{account.id}/{action}", {"motivo": reason},
                   form_page="/operador/rfc")


@pytest.mark.db
def test_naming_a_space_by_an_rfc_needs_an_operator_verified_constancia(portal):  # noqa: F811
    b = sign_up(portal, rfc=RFC_A)
    assert "verifíquelo" in _buy_named_by_rfc(portal, b)  # stated, not proven: refused
    assert "Agregado al carrito" not in b.text
    r = _submit_constancia(b, RFC_A, b"<html>no es un PDF</html>")
    assert "PDF" in b.text and r.status_code == 200
    _submit_constancia(b, RFC_A)
    assert "en revisión" in b.get("/cuenta/").get_data(as_text=True)
    assert "verifíquelo" in _buy_named_by_rfc(portal, b)  # still in review
    op = _operator(portal)
    page = op.get("/operador/rfc").get_data(as_text=True)
    assert RFC_A in page and "despacho" in page
    assert "1" in op.get("/operador/").get_data(as_text=True)  # pending count on the dashboard
    from spaces.commerce import accounts

    account = accounts.list_accounts(portal.db, "despacho")[0]
    doc = op.c.get(f"/operador/rfc/{account.id}/constancia.pdf")
    assert doc.status_code == 200 and doc.data == PDF
    assert "attachment" in doc.headers["Content-Disposition"]
    assert "sandbox" in doc.headers["Content-Security-Policy"]
    assert doc.headers["Cache-Control"] == "private, no-store"
    assert b.c.get(f"/operador/rfc/{account.id}/constancia.pdf").status_code == 404
    assert b.c.get("/operador/rfc").status_code == 404
    _review(portal, op, "despacho", "aprobar")
    assert "verificado" in b.get("/cuenta/").get_data(as_text=True)
    assert "Agregado al carrito" in _buy_named_by_rfc(portal, b)
    assert "abc680524p73" in b.text
    # a new RFC drops the verification until an operator looks again
    _submit_constancia(b, "GODE561231GR8")
    assert "verifíquelo" in _buy_named_by_rfc(portal, b)
    assert "abc680524p73" not in b.get("/carrito").get_data(as_text=True)


@pytest.mark.db
def test_two_accounts_never_hold_the_same_rfc(portal):  # noqa: F811
    a = sign_up(portal, "despacho", "ana@despacho.mx", rfc=RFC_A)
    squatter = sign_up(portal, "intruso", "intruso@x.mx", rfc=RFC_A)  # stating it is free
    _submit_constancia(a, RFC_A)
    _submit_constancia(squatter, RFC_A)
    op = _operator(portal)
    _review(portal, op, "intruso", "rechazar", "La constancia no corresponde.")
    assert "La constancia no corresponde" in squatter.get("/cuenta/").get_data(as_text=True)
    _review(portal, op, "despacho", "aprobar")
    # approving another account for the same RFC is refused, whatever the operator does
    _submit_constancia(squatter, RFC_A)
    assert "otra cuenta" in squatter.text
    from spaces.commerce import accounts, rfc_claims
    from spaces.core.errors import AlreadyExists

    intruso = accounts.list_accounts(portal.db, "intruso")[0]
    with portal.db.session() as s:  # even a claim that got in before the approval
        from sqlalchemy import update

        from spaces.core.models import Account

        s.execute(update(Account).where(Account.id == intruso.id)
                  .values(rfc=RFC_A, rfc_document="x.pdf", rfc_review_note=None))
    with pytest.raises(AlreadyExists):
        rfc_claims.approve(portal.db, intruso.id, "operator:root")
    assert "verifíquelo" in _buy_named_by_rfc(portal, squatter)


@pytest.mark.db
def test_simultaneous_approvals_of_one_rfc_verify_exactly_one_account(portal):  # noqa: F811
    import threading

    from spaces.commerce import accounts, rfc_claims
    from spaces.core.errors import AlreadyExists

    ids = []
    for i in range(4):
        b = sign_up(portal, f"cuenta{i}", f"c{i}@x.mx", rfc=RFC_A)
        _submit_constancia(b, RFC_A)
        ids.append(accounts.list_accounts(portal.db, f"cuenta{i}")[0].id)
    results: list[str] = []
    barrier = threading.Barrier(len(ids))

    def approve(account_id: int) -> None:
        barrier.wait()
        try:
            rfc_claims.approve(portal.db, account_id, "operator:root")
            results.append("ok")
        except AlreadyExists:
            results.append("taken")

    threads = [threading.Thread(target=approve, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["ok", "taken", "taken", "taken"]
    assert sum(accounts.get_account(portal.db, i).rfc_verified for i in ids) == 1


def test_a_username_shaped_like_an_rfc_cannot_squat_the_free_space(portal):  # noqa: F811
    b = portal.browser()
    for name in ("abc680524p73", "GODE561231GR8", "xaxx010101000"):
        b.post("/cuenta/registro", {"username": name, "email": f"{name}@x.mx",
                                    "password": PASSWORD}, form_page="/cuenta/registro")
        assert "forma de un RFC" in b.text, name
    from spaces.commerce import accounts

    assert accounts.list_accounts(portal.db) == []


@pytest.mark.db
@pytest.mark.parametrize("whole", [True, False])
def test_a_restored_backup_brings_back_no_session(portal, tmp_path, whole):  # noqa: F811
    """A session ended after a backup was taken must not come back when that backup
    is restored (the archive holds the versions of before): a restore ends every
    portal session of what it brings back."""
    from portal_helpers import Browser, drop, write_config

    from portal import create_app
    from spaces.core.db import open_database
    from spaces.core.settings_file import load_settings
    from spaces.jobs import backup, restore

    _acme(portal)
    b = _member_browser(portal, "jefa", "/cuenta/entrar-unidad")
    stolen = _thief(portal, b)
    archive = tmp_path / "respaldo.tar"
    backup.backup(portal.settings, portal.db, archive, None if whole else ["acme"])
    b.post("/cuenta/salir", {}, form_page="/espacios/acme/")  # ends the copy too
    (tmp_path / "nueva").mkdir()
    cfg, pg = write_config(tmp_path / "nueva")
    settings = load_settings(cfg)
    db = open_database(settings)
    try:
        restore.restore(settings, db, archive)
        restored = Browser(create_app(settings, db))
        restored.c.set_cookie("resguardo_sesion", stolen.c.get_cookie("resguardo_sesion").value)
        for path in ("/espacios/acme/", "/espacios/acme/cfdi?formato=zip", "/unidad/acme/"):
            assert restored.c.get(path).status_code in (302, 404), path
    finally:
        db.dispose()
        drop(pg)
