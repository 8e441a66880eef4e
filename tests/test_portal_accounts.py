"""The portal's accounts: sign-up and its e-mailed confirmation, logins and their
throttle, password reset and changes, CSRF and the session cookie, sign-up errors, and an
account and a drive logged in at once."""

from __future__ import annotations

import re

import pytest
from portal_helpers import PASSWORD, link_in, sign_up

from spaces.access import service
from spaces.commerce import accounts, space_admin

# -- accounts -----------------------------------------------------------------------------

@pytest.mark.db
def test_sign_up_confirms_by_smtp_and_login_waits_for_the_confirmation(portal):
    b = sign_up(portal, confirm=False)
    body = portal.smtp.last("Confirme su correo", "ana@despacho.mx")
    assert PASSWORD not in body
    other = portal.browser()
    other.post("/cuenta/entrar", {"login": "despacho", "password": PASSWORD},
               form_page="/cuenta/entrar")
    assert "Confirme su correo para entrar" in other.text
    path = link_in(body, "/cuenta/confirmar/")
    b.get(path)  # opening the link (a mail scanner would) does not spend it
    b.post(path, {}, form_page=path)
    assert "Correo confirmado" in b.text and "Espacio 1G gratis — comienza ahora" in b.text
    b.post(path, {}, form_page=None)  # the link works once
    assert "no es válido" in b.text
    other.post("/cuenta/entrar", {"login": "ana@despacho.mx", "password": PASSWORD},
               form_page="/cuenta/entrar")
    assert "Su escritorio de servicios" in other.text


@pytest.mark.parametrize("rfc,ok", [
    ("", True),
    ("XAXX010101000", True), ("XEXX010101000", True),
    ("GODE561231GR8", True),   # persona física, 13
    ("ABC680524P73", True),    # persona moral, 12
    ("ABC680524P76", False),   # persona moral, wrong check digit
    ("GODE561231GR9", False),  # wrong check digit
    ("ABC6805241P76", False),  # malformed
    ("ABC68052", False),
])
def test_rfc_is_optional_but_validated_with_the_sat_check_digit(portal, rfc, ok):
    b = portal.browser()
    b.post("/cuenta/registro", {"username": "empresa", "email": "e@empresa.mx",
                                "password": PASSWORD, "rfc": rfc}, form_page="/cuenta/registro")
    assert ("Revise su correo" in b.text) is ok, b.text
    if not ok:
        assert "RFC" in b.text and not portal.smtp.messages


def test_sign_up_with_a_registered_email_looks_the_same_and_warns_the_owner(portal):
    sign_up(portal)
    b = portal.browser()
    b.post("/cuenta/registro", {"username": "intruso", "email": "ana@despacho.mx",
                                "password": PASSWORD}, form_page="/cuenta/registro")
    assert "Revise su correo" in b.text
    assert portal.smtp.find("Ya tiene una cuenta", "ana@despacho.mx")
    assert accounts.list_accounts(portal.db, "intruso") == []
    b.post("/cuenta/registro", {"username": "despacho", "email": "otro@x.mx",
                                "password": PASSWORD}, form_page="/cuenta/registro")
    assert "Revise su correo" in b.text  # the mailbox's owner learns the username is taken
    assert portal.smtp.find("«despacho» no está disponible", "otro@x.mx")


def test_bad_logins_look_the_same_and_are_throttled(portal):
    sign_up(portal)
    b = portal.browser()
    answers = set()
    for login in ("despacho", "nadie"):
        r = b.post("/cuenta/entrar", {"login": login, "password": "equivocada"},
                   form_page="/cuenta/entrar")
        answers.add((r.status_code, "Usuario o contraseña incorrectos." in b.text))
    assert answers == {(200, True)}
    for _ in range(6):
        b.post("/cuenta/entrar", {"login": "despacho", "password": "equivocada"},
               form_page="/cuenta/entrar")
    r = b.post("/cuenta/entrar", {"login": "despacho", "password": PASSWORD},
               form_page="/cuenta/entrar")
    assert r.status_code == 429 and "Demasiados intentos" in b.text


@pytest.mark.db
def test_password_reset_by_one_time_link_and_no_enumeration(portal):
    sign_up(portal)
    b = portal.browser()
    b.post("/cuenta/olvide", {"email": "nadie@x.mx"}, form_page="/cuenta/olvide")
    unknown = b.text.replace("nadie@x.mx", "X")
    b.post("/cuenta/olvide", {"email": "ana@despacho.mx"}, form_page="/cuenta/olvide")
    assert b.text.replace("ana@despacho.mx", "X") == unknown
    assert "/cuenta/restablecer/" not in portal.smtp.last("Restablecer", "nadie@x.mx")
    path = link_in(portal.smtp.last("Restablecer", "ana@despacho.mx"), "/cuenta/restablecer/")
    b.post(path, {"password": "nueva-clave-22", "confirm": "nueva-clave-22"}, form_page=path)
    assert "Contraseña cambiada" in b.text
    b.get(path, follow_redirects=True)
    assert "no es válido" in b.text
    assert accounts.authenticate(portal.db, "despacho", "nueva-clave-22") is not None
    assert accounts.authenticate(portal.db, "despacho", PASSWORD) is None


def test_a_forged_host_header_never_reaches_an_emailed_link(portal):
    from portal.web import links

    with portal.app.test_request_context("/", headers={"Host": "evil.example"}):
        assert links().reset("t") == portal.settings.base_url() + "/cuenta/restablecer/t"
    with portal.app.test_request_context("/", base_url="http://127.0.0.1:8123"):
        assert links().base_url == "http://127.0.0.1:8123"
    portal.settings.server.public_url = "https://drive.example.mx/"
    with portal.app.test_request_context("/", base_url="http://127.0.0.1:8123"):
        assert links().drive("x") == "https://drive.example.mx/dav/x/"


@pytest.mark.db
def test_change_password_and_email_from_my_account(portal):
    b = sign_up(portal)
    b.post("/cuenta/", {"pw-current": "mala-clave-0", "pw-password": "otra-clave-33",
                        "pw-submit": "1"}, form_page="/cuenta/")
    assert "La contraseña actual no es correcta" in b.text
    b.post("/cuenta/", {"pw-current": PASSWORD, "pw-password": "otra-clave-33",
                        "pw-submit": "1"}, form_page="/cuenta/")
    assert "Contraseña cambiada" in b.text
    b.post("/cuenta/", {"em-current": "otra-clave-33", "em-email": "nuevo@despacho.mx",
                        "em-submit": "1"}, form_page="/cuenta/")
    assert accounts.list_accounts(portal.db, "despacho")[0].email == "ana@despacho.mx"
    path = link_in(portal.smtp.last("nuevo correo", "nuevo@despacho.mx"),
                   "/cuenta/cambiar-correo/")
    b.post(path, {}, form_page=path)
    assert accounts.list_accounts(portal.db, "despacho")[0].email == "nuevo@despacho.mx"


def test_every_form_post_without_its_csrf_token_is_refused(portal):
    b = sign_up(portal)
    posts = [r for r in portal.app.url_map.iter_rules() if "POST" in (r.methods or set())
             and r.endpoint != "shop.webhook"]
    assert len(posts) >= 15
    for rule in posts:
        path = rule.rule
        for arg in rule.arguments:
            path = path.replace(f"<{arg}>", "1").replace(f"<int:{arg}>", "1")
        r = b.c.post(path, data={"username": "x"})
        assert r.status_code == 400, (path, r.status_code)
        assert "La página caducó" in r.get_data(as_text=True)


def test_session_cookie_is_http_only_and_same_site(portal):
    b = portal.browser()
    r = b.post("/cuenta/entrar", {"login": "x", "password": "y"}, form_page="/cuenta/entrar")
    cookie = b.c.get_cookie("resguardo_sesion")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"
    assert r.headers["X-Frame-Options"] == "DENY"


# -- errors ---------------------------------------------------------------------------------

def test_sign_up_shows_every_error_at_once_beside_its_field(portal):
    b = portal.browser()
    r = b.post("/cuenta/registro", {"username": "a b", "email": "ana@despacho.mx",
                                    "password": PASSWORD, "rfc": "XOJI740919U47"},
               form_page="/cuenta/registro")
    assert r.status_code == 200 and "Revise su correo" not in b.text
    # The bad username and the wrong RFC check digit, both, each beside its field.
    assert re.search(r'id="username-error">[^<]+<', b.text), b.text
    assert re.search(r'id="rfc-error">[^<]*(verificador|válido)[^<]*<', b.text), b.text
    assert 'aria-invalid="true"' in b.text and "Revise los 2 campos marcados" in b.text
    assert 'id="email-error"' not in b.text


def test_sign_up_and_free_space_redirect_after_post_so_a_reload_repeats_nothing(portal):
    b = sign_up(portal, confirm=False)
    assert b.c.get("/cuenta/revise-su-correo").status_code == 200  # a reload: same page
    b = sign_up(portal, "otro", "otro@despacho.mx")
    r = b.post("/espacio-gratis", {}, form_page="/", follow=False)
    assert r.status_code == 302
    assert r.headers["Location"].endswith("/espacio-gratis")
    for _ in range(2):  # the confirmation page, and F5 on it
        r = b.get("/espacio-gratis")
        assert r.status_code == 200 and 'id="unidad"' in b.text
        assert "sólo para cuentas" not in b.text
    owner = accounts.authenticate(portal.db, "otro", PASSWORD)
    assert [s.name for s in accounts.owned_spaces(portal.db, owner.id)] == ["otro"]


@pytest.mark.parametrize("method, path, code, title", [
    ("GET", "/no-existe", 404, "No encontramos esta página"),
    ("PUT", "/planes", 405, "Esta dirección no se abre así"),
    ("GET", "/cuenta/salir", 405, "Esta dirección no se abre así"),
])
def test_errors_are_designed_spanish_pages(portal, method, path, code, title):
    r = portal.browser().c.open(path, method=method)
    html = r.get_data(as_text=True)
    assert r.status_code == code and title in html and 'lang="es-MX"' in html
    assert "Method Not Allowed" not in html and "Not Found" not in html
    if code == 405:
        assert "GET" in r.headers["Allow"] or "POST" in r.headers["Allow"]


# -- two logins -------------------------------------------------------------------------------

@pytest.mark.db
def test_an_owner_who_is_a_member_keeps_the_account_and_the_drive_logged_in_at_once(portal):
    b = sign_up(portal)  # logged in to the account
    b.post("/espacio-gratis", {}, form_page="/")
    (member,) = service.list_members(portal.db, "despacho")
    token = accounts.issue_token(portal.db, portal.settings, "member", member_id=member.id)
    space_admin.set_member_password(portal.db, token, "clave-unidad-1")

    b.post("/unidad/entrar", {"space": "despacho", "username": "despacho",
                             "password": "clave-unidad-1"}, form_page="/unidad/entrar")
    b.get("/")  # the account is still logged in...
    assert "Mi cuenta (despacho)" in b.text and "Carrito" in b.text
    assert 'id="mis-archivos"' in b.text  # ...and so is the drive
    assert b.get("/unidad/despacho/").status_code == 200 and 'id="ubicacion"' in b.text

    b.post("/cuenta/entrar", {"login": "despacho", "password": PASSWORD},
           form_page="/cuenta/entrar")  # logging in to the account again...
    assert b.get("/unidad/despacho/").status_code == 200 and 'id="ubicacion"' in b.text
    b.get("/")  # ...ends neither
    assert "Mi cuenta (despacho)" in b.text and 'id="mis-archivos"' in b.text

    b.post("/cuenta/salir", {}, form_page="/")  # one "Salir" ends both
    b.get("/")
    assert "Mi cuenta" not in b.text and 'id="mis-archivos"' not in b.text


@pytest.mark.db
def test_an_account_login_drops_a_drive_login_of_a_space_it_does_not_own(portal):
    service.create_space(portal.settings, portal.db, "ajeno", "4G")
    service.add_member(portal.db, "ajeno", "pepe", "clave-de-pepe-1")
    b = sign_up(portal, confirm=False)
    path = link_in(portal.smtp.last("Confirme su correo", "ana@despacho.mx"),
                   "/cuenta/confirmar/")
    b.post("/unidad/entrar", {"space": "ajeno", "username": "pepe",
                             "password": "clave-de-pepe-1"}, form_page="/unidad/entrar")
    assert b.get("/unidad/ajeno/").status_code == 200
    b.post(path, {}, form_page=path)  # confirming logs the account in
    assert "Correo confirmado" in b.text
    assert b.get("/unidad/ajeno/", follow_redirects=False).status_code == 302
    b.get("/")
    assert "Mi cuenta (despacho)" in b.text and 'id="mis-archivos"' not in b.text
