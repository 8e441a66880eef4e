"""The portal through Flask's test client, on a real database, with e-mail
received by a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from portal_helpers import Browser, SmtpSink, drop, link_in, write_config
from sqlalchemy import func, select

from spaces.access import service
from spaces.commerce import accounts, billing, space_admin
from spaces.core import plans
from spaces.core.db import Database, open_database
from spaces.core.errors import SpaceError
from spaces.core.models import Order, PaymentEvent, Space
from spaces.core.settings import ConfigError, Settings
from spaces.core.settings_file import load_settings

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "clave-segura-1"


@dataclass
class Portal:
    app: Any
    settings: Settings
    db: Database
    smtp: SmtpSink

    def browser(self) -> Browser:
        return Browser(self.app)


@pytest.fixture
def smtp():
    s = SmtpSink()
    yield s
    s.stop()


def _portal(tmp_path: Path, smtp: SmtpSink, extra: str = ""):
    from portal import create_app

    cfg, pg = write_config(tmp_path, f'[mail]\nsmtp_host = "127.0.0.1"\n'
                                     f'smtp_port = {smtp.port}\nsmtp_security = "none"\n'
                                     f"{extra}")
    settings = load_settings(cfg)
    db = open_database(settings)
    return Portal(create_app(settings, db), settings, db, smtp), pg


@pytest.fixture
def portal(tmp_path, smtp):
    p, pg = _portal(tmp_path, smtp)
    yield p
    p.db.dispose()
    drop(pg)


def sign_up(p: Portal, username: str = "despacho", email: str = "ana@despacho.mx",
            rfc: str = "", confirm: bool = True) -> Browser:
    b = p.browser()
    r = b.post("/cuenta/registro", {"username": username, "email": email,
                                    "password": PASSWORD, "rfc": rfc},
               form_page="/cuenta/registro")
    assert "Revise su correo" in b.text, b.text
    if confirm:
        path = link_in(p.smtp.last("Confirme su correo", email), "/cuenta/confirmar/")
        r = b.post(path, {}, form_page=path)
        assert "Correo confirmado" in b.text
    assert r.status_code == 200
    return b


def buy(p: Portal, b: Browser, tier: str = "4G", period: str = "monthly",
        naming: str = "username", card: str = "4242424242424242") -> str:
    """Through the pages: plans -> cart -> contract -> sandbox card. Returns the order ref."""
    b.post("/planes", {"tier": tier, "period": period, "naming": naming}, form_page="/planes")
    assert "Agregado al carrito" in b.text, b.text
    b.post("/pago", {"contract_version": p.settings.billing.contract_version, "accept": "y"},
           form_page="/pago", follow=False)
    r = b.c.get("/pago", follow_redirects=False)
    with p.db.session() as s:
        ref = s.scalar(select(Order.reference).order_by(Order.id.desc()))
    b.post(f"/sandbox/pagar/{ref}", {"number": card, "name": "Ana", "expiry": "12/30",
                                     "cvc": "123"}, form_page=f"/sandbox/pagar/{ref}")
    assert r is not None
    return ref


# -- prices -----------------------------------------------------------------------------

def test_4g_for_one_month_is_65_plus_16_percent_iva_75_40_in_decimals():
    q = plans.quote(Settings(), "4G", "monthly")
    assert q.description == "Plan 4G por un mes"
    assert (q.price, q.discount_percent, q.discount, q.subtotal, q.tax, q.total) == (
        Decimal("65.00"), Decimal("0"), Decimal("0.00"), Decimal("65.00"), Decimal("10.40"),
        Decimal("75.40"))
    assert all(isinstance(x, Decimal) for x in (q.price, q.discount, q.subtotal, q.tax,
                                                q.total))
    assert plans.format_mxn(q.total) == "$75.40"


def test_amounts_round_half_up_to_centavos(tmp_path):
    cfg = tmp_path / "c.toml"
    # 0.25 x 50 % = 0.125: half-up gives 0.13 (banker's rounding would give 0.12).
    cfg.write_text('[billing]\ndiscount_monthly = "50"\n[tiers.4G]\nquota = "4G"\n'
                   'monthly_price = "0.25"\n', encoding="utf-8")
    q = plans.quote(load_settings(cfg), "4G", "monthly")
    assert q.discount == Decimal("0.13") and q.subtotal == Decimal("0.12")
    assert q.tax == Decimal("0.02") and q.total == Decimal("0.14")
    cfg.write_text('[tiers.4G]\nquota = "4G"\nmonthly_price = "65.03"\n', encoding="utf-8")
    q = plans.quote(load_settings(cfg), "4G", "monthly")
    assert q.tax == Decimal("10.40") and q.total == Decimal("75.43")  # 10.4048 -> 10.40
    cfg.write_text('[tiers.4G]\nquota = "4G"\nmonthly_price = "65.0313"\n', encoding="utf-8")
    assert plans.quote(load_settings(cfg), "4G", "monthly").price == Decimal("65.03")


def test_period_discounts_and_prices_come_from_the_config(tmp_path):
    s = Settings()
    annual = plans.quote(s, "4G", "annual")
    assert annual.description == "Plan 4G por un año"
    assert annual.price == Decimal("780.00") and annual.discount_percent == Decimal("15")
    assert annual.discount == Decimal("117.00") and annual.total == Decimal("769.08")
    cfg = tmp_path / "c.toml"
    cfg.write_text('[billing]\ndiscount_quarterly = "7.5"\n[tiers.10G]\nquota = "10G"\n'
                   'max_users = 30\nmonthly_price = "150.00"\n', encoding="utf-8")
    q = plans.quote(load_settings(cfg), "10G", "quarterly")
    assert q.price == Decimal("450.00") and q.discount == Decimal("33.75")
    assert q.subtotal == Decimal("416.25") and q.tax == Decimal("66.60")
    assert q.total == Decimal("482.85")
    with pytest.raises(SpaceError):
        plans.quote(s, "1G", "monthly")  # the free tier is claimed, never sold


@pytest.mark.parametrize("text,word", [
    ('[billing]\ndiscount_annual = "cien"\n', "discount_annual"),
    ('[billing]\ndiscount_annual = "100"\n', "discount_annual"),
    ('[billing]\ngateway = "paypal"\n', "gateway"),
    ('[tiers.4G]\nmonthly_price = "barato"\n', "monthly_price"),
    ('[mail]\nsmtp_security = "ssl"\n', "smtp_security"),
])
def test_bad_billing_or_mail_config_is_an_error_naming_the_file(tmp_path, text, word):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg)
    assert str(cfg) in str(exc.value) and word in str(exc.value)


def test_plans_page_shows_the_breakdown_line_by_line(portal):
    b = portal.browser()
    b.get("/planes?tier=4G&period=monthly")
    html = b.text
    for row in ('Plan 4G por un mes</th><td class="num">$65.00',
                'Descuento (0 %)</th><td class="num">$0.00',
                'Subtotal</th><td class="num">$65.00',
                'IVA 16 %</th><td class="num">$10.40',
                'Total</th><td class="num" data-total>$75.40 MXN'):
        assert row in html, row
    b.get("/planes?tier=4G&period=annual")
    assert "Descuento (15 %)</th><td class=\"num\">-$117.00" in b.text and "$769.08" in b.text
    # The fragment the page's script asks for as the selection changes: the same rows.
    frag = b.c.get("/planes/desglose?tier=4G&period=annual&naming=username")
    assert 'id="desglose"' in frag.get_data(as_text=True)
    assert "$769.08" in frag.get_data(as_text=True) and "<html" not in frag.get_data(as_text=True)


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


# -- the free space -------------------------------------------------------------------------

@pytest.mark.db
def test_free_space_is_created_at_once_with_its_drive_url_and_access_mail(portal):
    b = sign_up(portal)
    b.post("/espacio-gratis", {}, form_page="/")
    assert "¡Su espacio gratis está activo!" in b.text
    assert "http://localhost/dav/despacho/" in b.text and "1 GB" in b.text
    info = service.get_space(portal.db, "despacho")
    assert info.tier == "1G" and info.quota_bytes == 2**30 and info.paid_until is None
    body = portal.smtp.last("Datos de acceso a su espacio despacho (1G)", "ana@despacho.mx")
    assert "Usuario: despacho" in body and "/acceso/" in body
    b.get("/")
    assert "comienza ahora" not in b.text


@pytest.mark.db
def test_free_space_only_once_even_with_simultaneous_clicks(portal):
    b = sign_up(portal)
    account = accounts.list_accounts(portal.db, "despacho")[0]
    results: list[str] = []
    barrier = threading.Barrier(6)

    def click() -> None:
        barrier.wait()
        try:
            accounts.claim_free_space(portal.settings, portal.db, portal.app.extensions[
                "resguardo"].mailer, accounts.notices.Links("http://x"), account.id)
            results.append("ok")
        except accounts.FreeSpaceUnavailable:
            results.append("refused")

    threads = [threading.Thread(target=click) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["ok"] + ["refused"] * 5
    b.post("/espacio-gratis", {}, form_page="/")
    assert "sólo para cuentas confirmadas que nunca han tenido" in b.text
    with portal.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Space)) == 1


@pytest.mark.db
def test_an_account_that_had_a_paid_space_cannot_claim_the_free_one(portal):
    b = sign_up(portal)
    buy(portal, b, "4G")
    assert service.get_space(portal.db, "despacho").tier == "4G"
    b.get("/")
    assert "comienza ahora" not in b.text
    b.post("/espacio-gratis", {}, form_page="/cuenta/")
    assert "nunca han tenido" in b.text
    assert len(service.list_spaces(portal.db)) == 1


# -- cart, checkout, payment ---------------------------------------------------------------

@pytest.mark.db
def test_cart_holds_changes_and_removes_items_with_totals(portal):
    from spaces.commerce import rfc_claims

    b = sign_up(portal, rfc="ABC680524P73")
    # naming a space by RFC needs the RFC verified (tests/test_portal_security.py)
    rfc_claims.submit(portal.settings, portal.db, 1, "ABC680524P73", b"%PDF-1.4\n")
    rfc_claims.approve(portal.db, 1, "operator:prueba")
    b.post("/planes", {"tier": "4G", "period": "monthly", "naming": "username"},
           form_page="/planes")
    b.post("/planes", {"tier": "10G", "period": "annual", "naming": "rfc"},
           form_page="/planes")
    lines = billing.cart(portal.settings, portal.db, 1)
    assert [(ln.space_name, ln.quote.tier, ln.action) for ln in lines] == [
        ("despacho", "4G", "create"), ("abc680524p73", "10G", "create")]
    b.get("/carrito")
    assert "$75.40" in b.text
    total = plans.quote(portal.settings, "4G", "monthly").total + plans.quote(
        portal.settings, "10G", "annual").total
    assert plans.format_mxn(total) in b.text
    first = lines[0].id
    b.post(f"/carrito/cambiar/{first}", {f"i{first}-item": str(first),
                                          f"i{first}-tier": "40G",
                                          f"i{first}-period": "quarterly"}, form_page="/carrito")
    assert "Carrito actualizado" in b.text
    assert billing.cart(portal.settings, portal.db, 1)[0].quote.tier == "40G"
    second = lines[1].id
    b.post(f"/carrito/quitar/{second}", {f"r{second}-item": str(second)}, form_page="/carrito")
    assert [ln.space_name for ln in billing.cart(portal.settings, portal.db, 1)] == ["despacho"]
    b.post("/planes", {"tier": "4G", "period": "monthly", "naming": "username"},
           form_page="/planes")
    assert "Ya hay en su carrito" in b.text


@pytest.mark.db
def test_checkout_requires_the_current_contract_and_stores_its_version(portal):
    b = sign_up(portal)
    b.post("/planes", {"tier": "4G", "period": "monthly", "naming": "username"},
           form_page="/planes")
    b.post("/pago", {"contract_version": "2026-01"}, form_page="/pago")
    assert "Debe aceptar el contrato" in b.text
    b.post("/pago", {"contract_version": "1999-01", "accept": "y"}, form_page="/pago")
    assert "versión vigente" in b.text
    with portal.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Order)) == 0
    r = b.post("/pago", {"contract_version": "2026-01", "accept": "y"}, form_page="/pago",
               follow=False)
    assert r.status_code == 302 and "/sandbox/pagar/RG-" in r.headers["Location"]
    order = billing.list_orders(portal.db)[0]
    assert order.contract_version == "2026-01" and order.contract_accepted_at is not None
    assert order.status == "pending" and order.totals.total == Decimal("75.40")
    assert billing.cart(portal.settings, portal.db, order.account_id) == []


@pytest.mark.db
def test_declined_and_failing_cards_change_nothing_then_the_good_card_provisions(portal):
    b = sign_up(portal)
    ref = buy(portal, b, card="4000000000000002")
    assert "Pago rechazado" in b.text and "No se cobró nada" in b.text
    ref2 = ref
    b.post(f"/sandbox/pagar/{ref}", {"number": "4000000000000119", "name": "Ana",
                                     "expiry": "12/30", "cvc": "123"},
           form_page=f"/sandbox/pagar/{ref}")
    assert "Error al procesar el pago" in b.text
    assert service.list_spaces(portal.db) == []
    assert billing.get_order(portal.db, ref).status == "pending"
    assert not portal.smtp.find("Datos de acceso")
    b.post(f"/sandbox/pagar/{ref2}", {"number": "4242 4242 4242 4242", "name": "Ana",
                                      "expiry": "12/30", "cvc": "123"},
           form_page=f"/sandbox/pagar/{ref2}")
    assert "Pago recibido" in b.text and "$75.40" in b.text
    space = service.get_space(portal.db, "despacho")
    assert space.tier == "4G" and space.quota_bytes == 4 * 2**30 and space.max_users == 10
    assert space.paid_until == plans.add_months(date.today(), 1)
    body = portal.smtp.last("Datos de acceso a su espacio despacho (4G)")
    assert "Dirección de la unidad: http://localhost/dav/despacho/" in body
    assert "Usuario: despacho" in body and "/acceso/" in body


def _signed(portal: Portal, body: bytes) -> dict[str, str]:
    return portal.app.extensions["resguardo"].gateway.sign(body)


@pytest.mark.db
def test_webhook_is_verified_and_the_same_event_twice_provisions_once(portal):
    import json

    b = sign_up(portal)
    b.post("/planes", {"tier": "4G", "period": "quarterly", "naming": "username"},
           form_page="/planes")
    b.post("/pago", {"contract_version": "2026-01", "accept": "y"}, form_page="/pago",
           follow=False)
    order = billing.list_orders(portal.db)[0]
    event = {"id": "evt_1", "type": "payment.paid", "order": order.reference,
             "amount_cents": order.total_cents, "currency": "MXN"}
    body = json.dumps(event).encode()
    hook = portal.app.test_client()  # the gateway has no session and no CSRF token
    r = hook.post("/pagos/webhook/sandbox", data=body,
                  headers={"X-Resguardo-Signature": "t=1,v1=00"})
    assert r.status_code == 400
    tampered = json.dumps({**event, "amount_cents": 1}).encode()
    r = hook.post("/pagos/webhook/sandbox", data=tampered, headers=_signed(portal, body))
    assert r.status_code == 400
    assert service.list_spaces(portal.db) == []

    r = hook.post("/pagos/webhook/sandbox", data=body, headers=_signed(portal, body))
    assert r.status_code == 200 and r.json["status"] == "provisioned"
    r = hook.post("/pagos/webhook/sandbox", data=body, headers=_signed(portal, body))
    assert r.status_code == 200 and r.json["status"] == "duplicate"
    again = json.dumps({**event, "id": "evt_2"}).encode()
    r = hook.post("/pagos/webhook/sandbox", data=again, headers=_signed(portal, again))
    assert r.json["status"] == "already_paid"
    space = service.get_space(portal.db, "despacho")
    assert space.paid_until == plans.add_months(date.today(), 3)
    assert len(portal.smtp.find("Datos de acceso")) == 1
    with portal.db.session() as s:
        assert s.scalar(select(func.count()).select_from(PaymentEvent)) == 2


@pytest.mark.db
def test_simultaneous_deliveries_of_one_event_provision_once(portal):
    import json

    b = sign_up(portal)
    b.post("/planes", {"tier": "4G", "period": "monthly", "naming": "username"},
           form_page="/planes")
    b.post("/pago", {"contract_version": "2026-01", "accept": "y"}, form_page="/pago",
           follow=False)
    order = billing.list_orders(portal.db)[0]
    body = json.dumps({"id": "evt_x", "type": "payment.paid", "order": order.reference,
                       "amount_cents": order.total_cents, "currency": "MXN"}).encode()
    statuses: list[str] = []
    barrier = threading.Barrier(4)

    def deliver() -> None:
        c = portal.app.test_client()
        barrier.wait()
        r = c.post("/pagos/webhook/sandbox", data=body, headers=_signed(portal, body))
        statuses.append(r.json["status"] if r.status_code == 200 else str(r.status_code))

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == ["duplicate"] * 3 + ["provisioned"], statuses
    assert service.get_space(portal.db, "despacho").paid_until == plans.add_months(
        date.today(), 1)
    assert len(portal.smtp.find("Datos de acceso")) == 1


@pytest.mark.db
def test_paid_amount_that_differs_from_the_order_provisions_nothing(portal):
    import json

    b = sign_up(portal)
    b.post("/planes", {"tier": "4G", "period": "monthly", "naming": "username"},
           form_page="/planes")
    b.post("/pago", {"contract_version": "2026-01", "accept": "y"}, form_page="/pago",
           follow=False)
    order = billing.list_orders(portal.db)[0]
    body = json.dumps({"id": "evt_1", "type": "payment.paid", "order": order.reference,
                       "amount_cents": 100, "currency": "MXN"}).encode()
    r = portal.app.test_client().post("/pagos/webhook/sandbox", data=body,
                                      headers=_signed(portal, body))
    assert r.json["status"] == "rejected"
    assert service.list_spaces(portal.db) == []
    assert billing.get_order(portal.db, order.reference).status == "pending"


@pytest.mark.db
def test_renewal_extends_paid_until_from_the_current_date(portal):
    b = sign_up(portal)
    buy(portal, b, "4G", "monthly")
    first = service.get_space(portal.db, "despacho").paid_until
    buy(portal, b, "4G", "semiannual")
    assert service.get_space(portal.db, "despacho").paid_until == plans.add_months(first, 6)
    assert plans.add_months(date(2027, 1, 31), 1) == date(2027, 2, 28)
    assert plans.extend_paid_until(date(2020, 1, 1), 1, date(2027, 3, 10)) == date(2027, 4, 10)


def test_orders_page_and_printable_receipt_for_the_owner_only(portal):
    b = sign_up(portal)
    ref = buy(portal, b)
    b.get("/pedidos")
    assert ref in b.text and "$75.40" in b.text
    b.get(f"/pedidos/{ref}/recibo")
    assert "Recibo de pago" in b.text and "$75.40" in b.text and "Plan 4G por un mes" in b.text
    assert "versión 2026-01" in b.text
    stranger = sign_up(portal, "otro", "otro@x.mx")
    assert stranger.get(f"/pedidos/{ref}/recibo").status_code == 404
    assert stranger.get(f"/pago/{ref}").status_code == 404
    assert portal.browser().get(f"/pedidos/{ref}/recibo").status_code == 404


# -- space administration -----------------------------------------------------------------

@pytest.mark.db
def test_space_admin_manages_users_within_the_tier_limit(portal):
    b = sign_up(portal)
    b.post("/espacio-gratis", {}, form_page="/")
    b.get("/espacios/despacho/")
    assert "1 de 1 usuarios" in b.text and "Agregar usuario" not in b.text
    b.post("/espacios/despacho/usuarios", {"username": "luis", "email": "luis@x.mx",
                                           "role": "editor"}, form_page="/espacios/despacho/")
    assert "ya tiene 1 de 1 usuarios" in b.text
    buy(portal, b, "4G")
    b.get("/espacios/despacho/")
    assert "1 de 10 usuarios" in b.text
    b.post("/espacios/despacho/usuarios", {"username": "luis", "email": "luis@x.mx",
                                           "role": "editor"}, form_page="/espacios/despacho/")
    assert "2 de 10 usuarios" in b.text
    invite = portal.smtp.last("Su acceso a la unidad despacho", "luis@x.mx")
    assert "Usuario: luis" in invite and "http://localhost/dav/despacho/" in invite
    luis = [m for m in space_admin.member_rows(portal.db, "despacho") if m.username == "luis"][0]
    p = f"m{luis.id}-"
    b.post(f"/espacios/despacho/usuarios/{luis.id}", {p + "username": "luis", p + "role":
                                                       "reader", p + "action": "role"},
           form_page="/espacios/despacho/")
    assert "Rol cambiado" in b.text
    assert [m.role for m in service.list_members(portal.db, "despacho")
            if m.username == "luis"] == ["reader"]
    b.post(f"/espacios/despacho/usuarios/{luis.id}", {p + "username": "luis", p + "role":
                                                       "reader", p + "action": "reset"},
           form_page="/espacios/despacho/")
    assert len(portal.smtp.find("Su acceso a la unidad despacho", "luis@x.mx")) == 2
    path = link_in(portal.smtp.last("Su acceso", "luis@x.mx"), "/acceso/")
    anyone = portal.browser()
    anyone.post(path, {"password": "clave-de-luis-1", "confirm": "clave-de-luis-1"},
                form_page=path)
    assert "Contraseña guardada" in anyone.text
    b.post(f"/espacios/despacho/usuarios/{luis.id}", {p + "username": "luis", p + "role":
                                                       "reader", p + "action": "remove"},
           form_page="/espacios/despacho/")
    assert "1 de 10 usuarios" in b.text
    assert [m.username for m in service.list_members(portal.db, "despacho")] == ["despacho"]


def test_space_admin_page_shows_usage_windows_instructions_and_reg_helper(portal):
    b = sign_up(portal)
    b.post("/espacio-gratis", {}, form_page="/")
    b.get("/espacios/despacho/")
    assert "0 bytes de 1 GB usados" in b.text
    assert "net use R: http://localhost/dav/despacho/" in b.text
    r = b.c.get("/espacios/despacho/resguardo-windows.reg")
    text = r.get_data().decode("utf-16-le").lstrip("\ufeff")
    assert text.startswith("Windows Registry Editor Version 5.00\r\n")
    assert '"FileSizeLimitInBytes"=dword:ffffffff' in text
    assert '"BasicAuthLevel"=dword:00000002' in text  # plain HTTP here
    assert "attachment" in r.headers["Content-Disposition"]


def test_space_pages_are_404_for_strangers_whether_or_not_the_space_exists(portal):
    b = sign_up(portal)
    b.post("/espacio-gratis", {}, form_page="/")
    stranger = sign_up(portal, "otro", "otro@x.mx")
    assert stranger.get("/espacios/despacho/").status_code == 404
    assert stranger.get("/espacios/nadie/").status_code == 404
    assert stranger.c.get("/espacios/despacho/resguardo-windows.reg").status_code == 404
    assert portal.browser().get("/espacios/despacho/").status_code == 404


def test_a_drive_user_with_the_admin_role_can_log_in_and_administer_only_its_space(portal):
    b = sign_up(portal)
    buy(portal, b, "4G")
    b.post("/espacios/despacho/usuarios", {"username": "jefa", "email": "jefa@x.mx",
                                           "role": "admin"}, form_page="/espacios/despacho/")
    path = link_in(portal.smtp.last("Su acceso", "jefa@x.mx"), "/acceso/")
    b2 = portal.browser()
    b2.post(path, {"password": "clave-de-jefa-1", "confirm": "clave-de-jefa-1"}, form_page=path)
    b2.post("/cuenta/entrar-unidad", {"space": "despacho", "username": "jefa",
                                      "password": "clave-de-jefa-1"},
            form_page="/cuenta/entrar-unidad")
    assert "2 de 10 usuarios" in b2.text
    assert b2.get("/operador/").status_code == 404
    b.post("/espacios/despacho/usuarios", {"username": "ana2", "email": "a2@x.mx",
                                           "role": "editor"}, form_page="/espacios/despacho/")
    path = link_in(portal.smtp.last("Su acceso", "a2@x.mx"), "/acceso/")
    b3 = portal.browser()
    b3.post(path, {"password": "clave-de-ana2", "confirm": "clave-de-ana2"}, form_page=path)
    b3.post("/cuenta/entrar-unidad", {"space": "despacho", "username": "ana2",
                                      "password": "clave-de-ana2"},
            form_page="/cuenta/entrar-unidad")
    assert "no es administrador" in b3.text
    assert b3.get("/espacios/despacho/").status_code == 404


# -- operator -------------------------------------------------------------------------------

def test_operator_created_by_the_cli_sees_everything_and_customers_get_404(portal, tmp_path):
    b = sign_up(portal)
    ref = buy(portal, b)
    assert b.get("/operador/").status_code == 404
    assert portal.browser().get("/operador/").status_code == 404
    # A valid CSRF token, so that the 404 is the operator pages hiding, not a CSRF refusal.
    assert b.post("/operador/espacios/despacho", {}, form_page="/cuenta/",
                  follow=False).status_code == 404
    cfg = tmp_path / "resguardo.toml"
    p = subprocess.run([sys.executable, "-m", "resguardo", "--config", str(cfg), "admin",
                        "create", "root", "--email", "ops@resguardo.mx", "--password-stdin"],
                       input="operador-seguro-1\n", capture_output=True, text=True, cwd=ROOT,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    op = portal.browser()
    op.post("/cuenta/entrar", {"login": "root", "password": "operador-seguro-1"},
            form_page="/cuenta/entrar")
    op.get("/operador/")
    assert "despacho" in op.text and ref in op.text and "ana@despacho.mx" in op.text
    assert "payment.paid" not in op.text and "paid" in op.text
    op.get("/operador/?q=nadie")
    assert ref not in op.text
    op.get("/operador/?q=despacho")
    assert ref in op.text
    space = service.get_space(portal.db, "despacho")
    pre = f"s{space.id}-"
    op.post("/operador/espacios/despacho", {pre + "action": "suspend", pre + "tier": "4G"},
            form_page="/operador/")
    assert service.get_space(portal.db, "despacho").status == "suspended"
    op.post("/operador/espacios/despacho", {pre + "action": "resume", pre + "tier": "4G"},
            form_page="/operador/")
    assert service.get_space(portal.db, "despacho").status == "active"
    op.post("/operador/espacios/despacho", {pre + "action": "tier", pre + "tier": "80G"},
            form_page="/operador/")
    assert service.get_space(portal.db, "despacho").tier == "80G"
    op.get("/espacios/despacho/")
    assert "despacho" in op.text  # operators can open any space's page


# -- language, e-mail transport, layering -------------------------------------------------------

def test_spanish_by_default_even_for_english_browsers_and_english_on_request(portal):
    b = portal.browser()
    b.get("/planes", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert "Actualizar modalidad" in b.text and 'lang="es-MX"' in b.text
    b.get("/idioma/en?next=/planes", follow_redirects=True)
    assert 'lang="en-US"' in b.text and "Upgrade plan" in b.text and "Add to cart" in b.text
    b.get("/idioma/es?next=/planes", follow_redirects=True)
    assert "Agregar al carrito" in b.text
    assert b.get("/idioma/en?next=//evil.example").headers["Location"] == "/"


def test_without_smtp_mail_goes_to_the_outbox_one_eml_per_message(tmp_path):
    from spaces.core.mail import Mail, Mailer

    m = Mailer(Settings(data_dir=str(tmp_path)))
    m.send(Mail("a@b.mx", "Prueba ñ", "Hola, ¿qué tal?"))
    m.send(Mail("c@d.mx", "Otra", "Texto"))
    files = sorted((tmp_path / "outbox").glob("*.eml"))
    assert len(files) == 2 and not list((tmp_path / "outbox").glob(".*"))
    import email as email_mod
    from email import policy

    msg = email_mod.message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert str(msg["Subject"]) in ("Prueba ñ", "Otra")


def test_each_outbox_message_has_a_readable_text_copy_whose_links_copy_whole(tmp_path):
    from spaces.core.mail import Mail, Mailer

    link = "http://127.0.0.1:8080/cuenta/confirmar/" + "x" * 90 + "=3D-ñ"
    Mailer(Settings(data_dir=str(tmp_path))).send(
        Mail("ana@despacho.mx", "Confirme su correo", f"Ábralo:\n\n{link}\n"))
    (eml,) = (tmp_path / "outbox").glob("*.eml")
    assert link not in eml.read_text(encoding="ascii", errors="replace")  # quoted-printable
    text = eml.with_suffix(".txt").read_text(encoding="utf-8")
    assert link in text.splitlines()  # one line, whole, as written
    assert "To: ana@despacho.mx" in text and "Subject: Confirme su correo" in text


@pytest.mark.db
def test_smtp_down_does_not_undo_the_sign_up(tmp_path):
    from portal_helpers import free_port

    from portal import create_app

    cfg, pg = write_config(tmp_path, f'[mail]\nsmtp_host = "127.0.0.1"\n'
                                     f'smtp_port = {free_port()}\nsmtp_security = "none"\n')
    settings = load_settings(cfg)
    db = open_database(settings)
    try:
        b = Browser(create_app(settings, db))
        b.post("/cuenta/registro", {"username": "despacho", "email": "a@b.mx",
                                    "password": PASSWORD}, form_page="/cuenta/registro")
        assert "Revise su correo" in b.text
        assert accounts.list_accounts(db, "despacho")
    finally:
        db.dispose()
        drop(pg)


def test_domain_modules_import_neither_flask_nor_wsgidav():
    mods = ["spaces.commerce.accounts", "spaces.commerce.billing", "spaces.commerce.payments",
            "spaces.core.mail", "spaces.commerce.notices", "spaces.commerce.lifecycle",
            "spaces.core.plans", "spaces.access.throttle"]
    code = ("import sys\n" + "".join(f"import {m}\n" for m in mods)
            + "print('flask' in sys.modules, 'wsgidav' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout.strip()
    assert out == "False False"




def test_usage_dates_and_times_are_es_mx_in_mexico_city_and_english_in_english(portal):
    from spaces.core import formats

    b = sign_up(portal)
    ref = buy(portal, b)
    until = plans.add_months(date.today(), 1)
    b.get("/espacios/despacho/")
    assert "0 bytes de 4 GB usados (0.0 %); 4 GB libres" in b.text
    assert f"Pagado hasta: <strong>{formats.day(until)}</strong>" in b.text
    b.get(f"/pedidos/{ref}/recibo")
    paid = re.search(r"Fecha de pago: ([^<]+)<", b.text).group(1).strip()
    assert re.fullmatch(r"\d{1,2} [a-z]{3,4} \d{4}, \d{2}:\d{2} CST", paid), paid
    assert "(0 %)" in b.text and "$75.40" in b.text
    b.get("/idioma/en?next=/espacios/despacho/", follow_redirects=True)
    assert "0 bytes of 4 GB used (0.0%); 4 GB free" in b.text
    assert formats.day(until, "en") in b.text


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


# -- plan changes -----------------------------------------------------------------------------

@pytest.mark.db
def test_a_plan_change_mid_period_credits_the_unused_days_as_its_own_line(portal):
    from datetime import timedelta

    from spaces.core import formats

    b = sign_up(portal)
    buy(portal, b, "4G", "quarterly")
    until = date.today() + timedelta(days=40)  # 40 days of 4G left
    with portal.db.session() as s:
        s.query(Space).filter(Space.name == "despacho").update({"paid_until": until})
    credit = plans.proration_credit(portal.settings, "4G", "quarterly", until, date.today())
    assert credit.days == 40 and credit.amount > 0
    q = plans.quote(portal.settings, "10G", "monthly", credit)

    # The page names the space and shows the credit as its own line, before the tax.
    b.get("/planes?tier=10G&period=monthly&naming=username")
    assert "despacho</strong> — cambio de plan" in b.text
    assert (f"Crédito: 40 días no usados del plan 4G</th><td class=\"num\">"
            f"{formats.mxn(-credit.amount)}") in b.text
    assert f"{formats.mxn(q.total)} MXN" in b.text
    # A renewal (the same plan) credits nothing: its period is added to the paid one.
    b.get("/planes?tier=4G&period=monthly&naming=username")
    assert "renovación" in b.text and "Crédito" not in b.text

    ref = buy(portal, b, "10G", "monthly")
    order = billing.get_order(portal.db, ref)
    assert order.totals.total == q.total and order.totals.credit == credit.amount
    (line,) = order.lines
    assert (line.credit, line.credit_days, line.credit_tier) == (credit.amount, 40, "4G")
    with portal.db.session() as s:
        sp = s.scalar(select(Space).where(Space.name == "despacho"))
        # The new plan starts the day it is paid: the unused days were credited.
        assert (sp.tier, sp.paid_until) == ("10G", plans.add_months(date.today(), 1))
    b.get(f"/pedidos/{ref}/recibo")
    assert "Crédito: 40 días no usados del plan 4G" in b.text
    assert f'id="total">{formats.mxn(q.total)}<' in b.text


@pytest.mark.db
def test_a_downgrade_worth_less_than_the_unused_days_pays_nothing_and_lasts_longer(portal):
    from datetime import timedelta

    b = sign_up(portal)
    buy(portal, b, "80G", "annual")
    credit = plans.proration_credit(portal.settings, "80G", "annual",
                                    plans.add_months(date.today(), 12), date.today())
    q = plans.quote(portal.settings, "4G", "monthly", credit)
    assert q.total == 0 and q.extra_days > 300
    b.get("/planes?tier=4G&period=monthly&naming=username")
    assert f"{q.extra_days} días más del plan 4G" in b.text
    ref = buy(portal, b, "4G", "monthly")
    assert billing.get_order(portal.db, ref).status == "paid"
    with portal.db.session() as s:
        sp = s.scalar(select(Space).where(Space.name == "despacho"))
        assert (sp.tier, sp.paid_until) == (
            "4G", plans.add_months(date.today(), 1) + timedelta(days=q.extra_days))


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


# -- sandbox card, contract -----------------------------------------------------------------

@pytest.mark.parametrize("expiry, error", [
    ("01/24", "venció en 01/24"), ("13/30", "de 01 a 12"), ("1230", "MM/AA"),
    ("12/99", "no es posible")])
def test_the_sandbox_refuses_expired_and_impossible_expiry_dates_beside_the_field(
        portal, expiry, error):
    b = sign_up(portal)
    b.post("/planes", {"tier": "4G", "period": "monthly", "naming": "username"},
           form_page="/planes")
    b.post("/pago", {"contract_version": portal.settings.billing.contract_version,
                     "accept": "y"}, form_page="/pago")
    with portal.db.session() as s:
        ref = s.scalar(select(Order.reference))
    b.post(f"/sandbox/pagar/{ref}", {"number": "4242424242424242", "name": "Ana",
                                     "expiry": expiry, "cvc": "123"},
           form_page=f"/sandbox/pagar/{ref}")
    assert re.search(r'id="expiry-error">[^<]*' + re.escape(error), b.text), b.text
    assert billing.get_order(portal.db, ref).status == "pending"
    b.post(f"/sandbox/pagar/{ref}", {"number": "4242424242424242", "name": "Ana",
                                     "expiry": "12/30", "cvc": "123"},
           form_page=f"/sandbox/pagar/{ref}")
    assert billing.get_order(portal.db, ref).status == "paid"


def test_the_contract_is_a_document_with_numbered_clauses(portal):
    b = portal.browser()
    b.get("/contrato")
    assert "<pre" not in b.text and '<ol class="clauses">' in b.text
    assert re.search(r'<li id="clausula-1" value="1"><strong>Objeto\.</strong> Resguardo '
                     r'presta al Cliente un espacio de almacenamiento accesible como unidad',
                     b.text)
    assert 'id="clausula-8"' in b.text
    b = sign_up(portal)
    b.post("/planes", {"tier": "4G", "period": "monthly", "naming": "username"},
           form_page="/planes")
    b.get("/pago")
    assert 'id="clausula-4"' in b.text and "<pre" not in b.text


def test_no_button_inside_a_link_on_the_pages_a_customer_walks(portal):
    nested = re.compile(r"<a\b[^>]*>(?:(?!</a>).)*<(button|input)\b", re.S)
    b = portal.browser()
    for path in ("/", "/planes", "/cuenta/registro", "/contrato"):
        assert not nested.search(b.get(path).get_data(as_text=True)), path
    b = sign_up(portal)
    b.post("/planes", {"tier": "4G", "period": "monthly", "naming": "username"},
           form_page="/planes")
    for path in ("/", "/carrito", "/pago"):
        assert not nested.search(b.get(path).get_data(as_text=True)), path


@pytest.mark.db
def test_saving_a_drive_password_redirects_so_a_reload_does_not_spend_the_link_again(portal):
    b = sign_up(portal)
    b.post("/espacio-gratis", {}, form_page="/")
    (member,) = service.list_members(portal.db, "despacho")
    token = accounts.issue_token(portal.db, portal.settings, "member", member_id=member.id)
    path = f"/acceso/{token}"
    anyone = portal.browser()
    r = anyone.post(path, {"password": "clave-unidad-1", "confirm": "clave-unidad-1"},
                    form_page=path, follow=False)
    assert r.status_code == 302 and r.headers["Location"].endswith("/acceso/listo")
    for _ in range(2):  # the page, and F5 on it
        anyone.get("/acceso/listo")
        assert "Contraseña guardada" in anyone.text and "no es válido" not in anyone.text
        assert "/dav/despacho/" in anyone.text and "<strong>despacho</strong>" in anyone.text
