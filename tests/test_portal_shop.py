"""The portal's shop: prices and their breakdown, cart, checkout and payment, plan changes
with their credit, the sandbox card and the contract."""

from __future__ import annotations

import re
import threading
from datetime import date
from decimal import Decimal

import pytest
from portal_helpers import Portal, buy, sign_up
from sqlalchemy import func, select

from spaces.access import service
from spaces.commerce import accounts, billing
from spaces.core import plans
from spaces.core.errors import SpaceError
from spaces.core.models import Order, PaymentEvent, Space
from spaces.core.settings import ConfigError, Settings
from spaces.core.settings_file import load_settings

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


# -- cart, checkout, payment ---------------------------------------------------------------

@pytest.mark.db
def test_cart_holds_changes_and_removes_items_with_totals(portal):
    from spaces.commerce import rfc_claims

    b = sign_up(portal, rfc="ABC680524P73")
    # naming a space by RFC needs the RFC verified (tests/test_portal_rfc_ownership.py)
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
