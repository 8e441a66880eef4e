"""Facturación: who may ask for a factura and when. Fiscal data SAT would refuse is
refused in Spanish and normalised as SAT's register has it, an RFC verified by another
account cannot be invoiced; a customer asks within the month of payment and later the sale
is in the global factura; one factura per order even when asked at once; a PAC that does
not answer or refuses leaves no stray factura."""

from __future__ import annotations

import threading
from datetime import datetime
from decimal import Decimal

import pytest
from invoicing_helpers import CFDI, moral, schema_errors
from lxml import etree
from sqlalchemy import select, update

from spaces.commerce import (
    billing,
    fiscal,
    invoice_records,
    invoicing,
    pac,
    rfc_claims,
)
from spaces.core.errors import AlreadyExists, Forbidden, InvalidName, SpaceError
from spaces.core.models import Account, Invoice, utcnow

# -- fiscal data ---------------------------------------------------------------------------

@pytest.mark.parametrize("rfc,name,regimen,cp,uso,word", [
    ("DLO0101019A5", "DESPACHO", "612", "06600", "G03", "no es para una persona moral"),
    ("XOJI740919U48", "INGRID XODAR", "601", "06600", "G03", "no es para una persona física"),
    ("XOJI740919U48", "INGRID XODAR", "605", "06600", "G03", "no acepta el uso G03"),
    ("DLO0101019A5", "DESPACHO", "601", "06600", "D01", "Elija el uso"),
    ("DLO0101019A5", "DESPACHO", "601", "06600", "CP01", "Elija el uso"),
    ("DLO0101019A5", "DESPACHO", "609", "06600", "G03", "régimen fiscal del catálogo"),
    ("DLO0101019A5", "DESPACHO", "601", "00001", "G03", "código postal"),
    ("DLO0101019A5", "DESPACHO", "601", "6600", "G03", "código postal"),
    ("DLO0101019A5", "DESPACHO|LOPEZ", "601", "06600", "G03", "carácter «|»"),
    ("DLO0101019A5", "DESPACHO\x00LOPEZ", "601", "06600", "G03", "carácter"),
    ("DLO0101019A5", "DESPACHO \U0001F600", "601", "06600", "G03", "carácter"),
    ("DLO0101019A5", "DESPACHO\u200bLOPEZ", "601", "06600", "G03", "carácter"),
    ("DLO0101019A5", "DESPACHO LOPEZ, S.A. DE C.V.", "601", "06600", "G03", "régimen capital"),
    ("DLO0101019A5", "DESPACHO LOPEZ SA DE CV", "601", "06600", "G03", "régimen capital"),
    ("DLO0101019A5", "   ", "601", "06600", "G03", "razón social"),
    ("XAXX010101000", "PUBLICO EN GENERAL", "616", "06600", "S01", "genérico"),
    ("EKU9003173C9", "ESCUELA KEMPER URGATE", "601", "42501", "G03", "emisor"),
    ("DLO0101019A4", "DESPACHO", "601", "06600", "G03", "no es válido"),
    ("DLO010101A5", "DESPACHO", "601", "06600", "G03", "12 caracteres"),
])
def test_fiscal_data_sat_would_refuse_is_refused_with_a_spanish_reason(shop, rfc, name,
                                                                       regimen, cp, uso, word):
    with pytest.raises(InvalidName) as exc:
        fiscal.check(shop.settings, rfc, name, regimen, cp, uso)
    assert word in str(exc.value)


def test_fiscal_data_is_normalised_as_sats_register_has_it(shop):
    d = fiscal.check(shop.settings, " xoji740919u48 ", "  Ingrid   Xódar\u00a0Jiménez ", "605",
                     "06600", "s01")
    assert (d.rfc, d.razon_social, d.regimen_fiscal, d.uso_cfdi, d.persona) == (
        "XOJI740919U48", "INGRID XÓDAR JIMÉNEZ", "605", "S01", "fisica")
    d = fiscal.check(shop.settings, "DLO0101019A5", "Comercial O'Brien & Hijos", "626",
                     "22000", "G03")
    assert d.razon_social == "COMERCIAL O'BRIEN & HIJOS" and d.persona == "moral"


@pytest.mark.db
def test_an_rfc_another_account_verified_cannot_be_invoiced_from_this_one(shop):
    owner = shop.account("dueno", "DLO0101019A5", "DESPACHO LOPEZ", "601", "06600")
    with shop.db.session() as s:
        s.execute(update(Account).where(Account.id == owner)
                  .values(rfc_verified_at=utcnow(), rfc_document="x.pdf"))
    other = shop.account("otro")
    data = fiscal.check(shop.settings, "DLO0101019A5", "DESPACHO LOPEZ", "601", "06600", "G03")
    with pytest.raises(AlreadyExists):
        fiscal.save(shop.settings, shop.db, other, data)
    # Stated before the owner verified it: the factura is still refused.
    intruder = shop.account("intruso", "DLO0101019A5", "DESPACHO LOPEZ", "601", "06600")
    ref = shop.pay(intruder, invoice=True)
    assert invoice_records.for_order(shop.db, ref) == []
    with pytest.raises(Forbidden, match="verificado en otra cuenta"):
        shop.issue(ref)
    assert invoice_records.for_order(shop.db, ref) == []


@pytest.mark.db
def test_verified_elsewhere_is_another_accounts_verified_rfc_only(shop):
    owner = shop.account("titular", "DLO0101019A5", "DESPACHO LOPEZ", "601", "06600")
    other = shop.account("tercero", "DLO0101019A5", "DESPACHO LOPEZ", "601", "06600")
    with shop.db.session() as s:  # stated by both, verified by nobody yet
        assert not rfc_claims.verified_elsewhere(s, "DLO0101019A5", other)
    with shop.db.session() as s:
        s.execute(update(Account).where(Account.id == owner)
                  .values(rfc_verified_at=utcnow(), rfc_document="x.pdf"))
    with shop.db.session() as s:
        assert rfc_claims.verified_elsewhere(s, "DLO0101019A5", other)
        assert not rfc_claims.verified_elsewhere(s, "DLO0101019A5", owner)  # its own
        assert not rfc_claims.verified_elsewhere(s, "XOJI740919U48", other)


@pytest.mark.db
def test_a_new_rfc_in_the_fiscal_data_drops_the_verification_and_the_constancia(shop):
    a = shop.account("cambia", "DLO0101019A5", "DESPACHO", "601", "06600")
    folder = shop.settings.data_path / "rfc" / str(a)
    folder.mkdir(parents=True)
    (folder / "c.pdf").write_bytes(b"%PDF-1.4")
    with shop.db.session() as s:
        s.execute(update(Account).where(Account.id == a).values(
            rfc_verified_at=utcnow(), rfc_document="c.pdf", rfc_document_at=utcnow()))
    fiscal.save(shop.settings, shop.db, a, fiscal.check(
        shop.settings, "XOJI740919U48", "INGRID XODAR", "612", "06600", "G03"))
    with shop.db.session() as s:
        acc = s.get(Account, a)
        assert acc.rfc == "XOJI740919U48" and acc.rfc_verified_at is None
        assert acc.rfc_document is None
    assert not (folder / "c.pdf").exists()


# -- when a customer may ask, and the global factura ----------------------------------------

@pytest.mark.db
def test_a_customer_asks_within_the_month_of_payment_and_later_it_is_in_the_global_one(shop):
    a = moral(shop)
    b = shop.account("publico")  # no fiscal data: never asks
    late = shop.pay(a)
    mine = shop.pay(shop.account("otra", "XOJI740919U48", "INGRID XODAR", "612", "06600"))
    anon = shop.pay(b)
    january = datetime(2026, 1, 20, 18, 0)
    for ref in (late, mine, anon):
        shop.paid_at(ref, january)
    # 31 Jan, 23:00 in Mexico City (05:00 UTC on 1 Feb): still January.
    shop.issue(mine, now=datetime(2026, 2, 1, 5, 0).replace(tzinfo=pac.UTC))
    with pytest.raises(Forbidden, match="mes"):
        shop.issue(late, now=datetime(2026, 2, 1, 7, 0).replace(tzinfo=pac.UTC))
    with pytest.raises(Forbidden, match="cuando el mes terminó"):
        shop.issue_global(2026, 2, datetime(2026, 2, 20).replace(tzinfo=pac.UTC))
    g = shop.issue_global(2026, 1, datetime(2026, 2, 1, 7, 0).replace(tzinfo=pac.UTC))
    assert g is not None and g.status == "valid" and g.kind == "global"
    xml = shop.xml(g)
    assert schema_errors(xml) == []
    root = etree.fromstring(xml)
    rc = root.find(f"{CFDI}Receptor")
    assert (rc.get("Rfc"), rc.get("Nombre"), rc.get("RegimenFiscalReceptor"),
            rc.get("UsoCFDI"), rc.get("DomicilioFiscalReceptor")) == (
        "XAXX010101000", "PUBLICO EN GENERAL", "616", "S01",
        shop.settings.invoicing.issuer_postal_code)
    ig = root.find(f"{CFDI}InformacionGlobal")
    assert (ig.get("Periodicidad"), ig.get("Meses"), ig.get("Año")) == ("04", "01", "2026")
    conceptos = root.findall(f"{CFDI}Conceptos/{CFDI}Concepto")
    assert sorted(c.get("NoIdentificacion") for c in conceptos) == sorted([late, anon])
    assert {(c.get("ClaveProdServ"), c.get("ClaveUnidad"), c.get("Descripcion"))
            for c in conceptos} == {("01010101", "ACT", "Venta")}
    assert Decimal(root.get("Total")) == Decimal("150.80")
    # Once in the global factura, the sale is never invoiced to the customer.
    with pytest.raises(Forbidden, match="global"):
        shop.issue(late, operator=True)
    # Idempotent: the same month again is the same factura.
    again = shop.issue_global(2026, 1, datetime(2026, 2, 2).replace(tzinfo=pac.UTC))
    assert again is not None and again.id == g.id


@pytest.mark.db
def test_simultaneous_requests_for_one_order_issue_one_factura(shop):
    ref = shop.pay(moral(shop))
    results: list[object] = []

    def ask() -> None:
        try:
            results.append(shop.issue(ref).uuid)
        except SpaceError as exc:
            results.append(type(exc).__name__)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with shop.db.session() as s:
        rows = s.scalars(select(Invoice)).all()
        assert len(rows) == 1 and rows[0].status == "valid"
    assert set(results) <= {rows[0].uuid, "AlreadyExists"} and rows[0].uuid in results
    assert len(shop.smtp.find("Su factura")) == 1


class FlakyPac(pac.SandboxPac):
    """The sandbox, but the first call does not answer."""

    def __init__(self, settings) -> None:  # type: ignore[no-untyped-def]
        super().__init__(settings)
        self.calls = 0

    def stamp(self, signed_xml: bytes, now: datetime | None = None) -> pac.Stamped:
        self.calls += 1
        if self.calls == 1:
            raise pac.PacUnavailable("El PAC no respondió.")
        return super().stamp(signed_xml, now)


@pytest.mark.db
def test_a_pac_that_does_not_answer_gets_the_same_signed_cfdi_again(shop):
    ref = shop.pay(moral(shop))
    flaky = FlakyPac(shop.settings)
    with pytest.raises(pac.PacUnavailable):
        shop.issue(ref, pac=flaky)
    with shop.db.session() as s:
        row = s.scalar(select(Invoice))
        signed, status = row.xml, row.status
    assert status == "stamping" and signed
    report = invoicing.run(shop.settings, shop.db, shop.mailer, pac=flaky)
    assert report.restamped == [ref] and report.errors == []
    info = invoice_records.for_order(shop.db, ref)[0]
    assert info.status == "valid"
    stamped = etree.fromstring(shop.xml(info))
    assert stamped.get("Sello") == etree.fromstring(signed.encode()).get("Sello")
    assert len(shop.smtp.find("Su factura")) == 1


class RefusingPac(pac.SandboxPac):
    def stamp(self, signed_xml: bytes, now: datetime | None = None) -> pac.Stamped:
        raise pac.PacRefused("CFDI40145: el nombre del receptor no corresponde al RFC.")


@pytest.mark.db
def test_a_pac_refusal_leaves_no_factura_and_the_customer_may_ask_again(shop):
    ref = shop.pay(moral(shop))
    with pytest.raises(pac.PacRefused, match="CFDI40145"):
        shop.issue(ref, pac=RefusingPac(shop.settings))
    assert invoice_records.for_order(shop.db, ref) == []
    assert billing.get_order(shop.db, ref).invoice_state == "none"
    assert shop.issue(ref).status == "valid"
