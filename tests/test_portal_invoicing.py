"""Facturas through the portal's pages (Flask's test client, a real database, e-mail
through a real SMTP server): fiscal data in «Mi cuenta», asking at checkout or
from the order, downloads only for the customer and operators, the operators'
list and cancellation."""

from __future__ import annotations

import re

import pytest
from invoicing_helpers import schema_errors
from lxml import etree
from portal_helpers import PASSWORD, Portal, sign_up
from sqlalchemy import select, update

from spaces.commerce import accounts, billing, invoice_records
from spaces.core.models import Account, AuditRecord, Order

FISCAL = {"fi-rfc": "DLO0101019A5", "fi-razon_social": "Despacho López",
          "fi-regimen_fiscal": "601", "fi-codigo_postal": "06600", "fi-uso_cfdi": "G03"}


def checkout(p: Portal, b, invoice: dict[str, str] | None = None) -> str:  # type: ignore[no-untyped-def]
    """Plans -> cart -> checkout (asking for the factura with ``invoice``'s data) ->
    the sandbox card. Returns the order's reference."""
    b.post("/planes", {"tier": "4G", "period": "monthly", "naming": "username"},
           form_page="/planes")
    data = {"contract_version": p.settings.billing.contract_version, "accept": "y"}
    if invoice is not None:
        data.update({"invoice": "y", **{k.removeprefix("fi-"): v for k, v in invoice.items()}})
    r = b.post("/pago", data, form_page="/pago", follow=False)
    assert r.status_code == 302, b.text
    with p.db.session() as s:
        ref = s.scalar(select(Order.reference).order_by(Order.id.desc()))
    b.post(f"/sandbox/pagar/{ref}", {"number": "4242424242424242", "name": "Ana",
                                     "expiry": "12/30", "cvc": "123"},
           form_page=f"/sandbox/pagar/{ref}")
    assert "Pago recibido" in b.text
    return str(ref)


@pytest.mark.db
def test_fiscal_data_asked_at_checkout_gives_a_factura_on_the_order_page_and_by_mail(portal):
    b = sign_up(portal)
    ref = checkout(portal, b, FISCAL)
    page = b.get(f"/pago/{ref}").get_data(as_text=True)
    uuid = re.search(r'id="factura-uuid">([0-9A-F-]{36})<', page).group(1)
    [info] = invoice_records.for_order(portal.db, ref)
    assert info.uuid == uuid and "SIN VALIDEZ FISCAL" in page
    xml = b.c.get(f"/facturas/{info.id}.xml")
    assert xml.status_code == 200 and xml.headers["Content-Type"].startswith("application/xml")
    assert "attachment" in xml.headers["Content-Disposition"]
    assert schema_errors(xml.data) == []
    root = etree.fromstring(xml.data)
    assert root.get("Total") == "75.40"
    assert root.find("{http://www.sat.gob.mx/cfd/4}Receptor").get("Nombre") == "DESPACHO LÓPEZ"
    pdf = b.c.get(f"/facturas/{info.id}.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF-")
    mail = portal.smtp.find("Su factura", "ana@despacho.mx")
    assert len(mail) == 1
    # The data became the account's: shown prefilled in «Mi cuenta».
    page = b.get("/cuenta/").get_data(as_text=True)
    assert 'value="DESPACHO LÓPEZ"' in page and 'value="DLO0101019A5"' in page


@pytest.mark.db
def test_only_the_customer_and_operators_download_a_factura(portal, tmp_path):
    b = sign_up(portal)
    ref = checkout(portal, b, FISCAL)
    [info] = invoice_records.for_order(portal.db, ref)
    stranger = sign_up(portal, "otro-despacho", "beto@otro.mx")
    anonymous = portal.browser()
    for path in (f"/facturas/{info.id}.xml", f"/facturas/{info.id}.pdf",
                 f"/facturas/{info.id + 1}.xml"):
        assert stranger.c.get(path).status_code == 404
        assert anonymous.c.get(path).status_code == 404
    assert stranger.post(f"/pago/{ref}/factura", {}, form_page="/cuenta/").status_code == 404
    accounts.create_operator(portal.db, "root", "root@resguardo.mx", PASSWORD)
    op = portal.browser()
    op.post("/cuenta/entrar", {"login": "root", "password": PASSWORD}, form_page="/cuenta/entrar")
    assert op.c.get(f"/facturas/{info.id}.pdf").status_code == 200
    page = op.get("/operador/").get_data(as_text=True)
    assert info.uuid in page and "/operador/facturas" in page
    assert stranger.get("/operador/facturas").status_code == 404
    assert b.get("/operador/facturas").status_code == 404


@pytest.mark.db
def test_a_customer_asks_from_the_order_page_after_paying_with_its_saved_fiscal_data(portal):
    b = sign_up(portal)
    ref = checkout(portal, b)
    page = b.get(f"/pago/{ref}").get_data(as_text=True)
    assert "escriba sus datos fiscales" in page and "pedir-factura" not in page
    # Hostile data is refused with SAT's reason and changes nothing.
    for bad, word in ((dict(FISCAL, **{"fi-regimen_fiscal": "612"}), "persona moral"),
                      (dict(FISCAL, **{"fi-razon_social": "A|B"}), "carácter"),
                      (dict(FISCAL, **{"fi-codigo_postal": "00001"}), "código postal")):
        b.post("/cuenta/fiscal", bad, form_page="/cuenta/")
        assert word in b.text
    with portal.db.session() as s:
        assert s.scalar(select(Account.razon_social).where(Account.username == "despacho")) \
            is None
    b.post("/cuenta/fiscal", FISCAL, form_page="/cuenta/")
    assert "Datos fiscales guardados" in b.text
    page = b.get(f"/pago/{ref}").get_data(as_text=True)
    assert "DESPACHO LÓPEZ" in page and 'id="pedir-factura"' in page
    b.post(f"/pago/{ref}/factura", {}, form_page=f"/pago/{ref}")
    assert "emitida" in b.text and 'id="factura-xml"' in b.text
    # Asking again is the same factura.
    b.post(f"/pago/{ref}/factura", {}, form_page=f"/pago/{ref}")
    assert len(invoice_records.for_order(portal.db, ref)) == 1


@pytest.mark.db
def test_after_the_month_of_payment_the_order_page_says_the_window_closed(portal):
    from datetime import datetime

    b = sign_up(portal)
    b.post("/cuenta/fiscal", FISCAL, form_page="/cuenta/")
    ref = checkout(portal, b)
    with portal.db.session() as s:
        s.execute(update(Order).where(Order.reference == ref)
                  .values(paid_at=datetime(2025, 1, 10)))
    page = b.get(f"/pago/{ref}").get_data(as_text=True)
    assert "terminó con el mes" in page and 'id="pedir-factura"' not in page
    b.post(f"/pago/{ref}/factura", {}, form_page=f"/pago/{ref}")
    assert "ese mes ya terminó" in b.text
    assert invoice_records.for_order(portal.db, ref) == []


@pytest.mark.db
def test_an_operator_cancels_from_the_page_and_the_customer_sees_it(portal):
    b = sign_up(portal)
    ref = checkout(portal, b, FISCAL)
    [info] = invoice_records.for_order(portal.db, ref)
    accounts.create_operator(portal.db, "root", "root@resguardo.mx", PASSWORD)
    op = portal.browser()
    op.post("/cuenta/entrar", {"login": "root", "password": PASSWORD}, form_page="/cuenta/entrar")
    page = op.get("/operador/facturas").get_data(as_text=True)
    assert info.uuid in page
    op.post(f"/operador/facturas/{info.id}/cancelar", {"motivo": "02"},
            form_page="/operador/facturas")
    assert "cancelada" in op.text
    assert invoice_records.get_invoice(portal.db, info.id).status == "cancelled"
    with portal.db.session() as s:
        row = s.execute(select(AuditRecord.user, AuditRecord.detail)
                        .where(AuditRecord.action == "invoice_cancelled")).one()
    assert row.user == "operator:root" and "motivo 02" in row.detail
    page = b.get(f"/pago/{ref}").get_data(as_text=True)
    assert "cancelada" in page and "motivo 02" in page
    # The customer's bitácora of the space shows both.
    page = b.get("/espacios/despacho/bitacora").get_data(as_text=True)
    assert "Factura emitida" in page and "Factura cancelada" in page
    # The operator issues it again from the list.
    op.post(f"/operador/facturas/pedido/{ref}", {}, form_page="/operador/facturas")
    assert "emitida" in op.text
    assert [f.status for f in invoice_records.for_order(portal.db, ref)] == ["valid", "cancelled"]
    assert billing.get_order(portal.db, ref).invoice_state == "own"


@pytest.mark.db
def test_an_operator_records_a_refund_and_the_customer_sees_it(portal):
    b = sign_up(portal)
    ref = checkout(portal, b, FISCAL)
    accounts.create_operator(portal.db, "root", "root@resguardo.mx", PASSWORD)
    op = portal.browser()
    op.post("/cuenta/entrar", {"login": "root", "password": PASSWORD}, form_page="/cuenta/entrar")
    assert b.post("/operador/reembolsos", {"reference": ref},
                  form_page="/cuenta/").status_code == 404  # customers cannot
    op.post("/operador/reembolsos", {"reference": ref.lower()}, form_page="/operador/facturas")
    assert "Reembolso de" in op.text and "cancelada" in op.text
    page = b.get(f"/pago/{ref}").get_data(as_text=True)
    assert "Pago reembolsado" in page and "no tiene factura vigente" in page
    assert "reembolsado" in b.get("/pedidos").get_data(as_text=True)
    assert b.c.get(f"/pedidos/{ref}/recibo").status_code == 200
