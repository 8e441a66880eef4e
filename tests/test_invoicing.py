"""Facturación: CFDI 4.0 for paid orders, stamped by the sandbox PAC, on a real
database. The XML is checked with SAT's own schemas and transforms (the files
vendored in spaces/sat, loaded here by lxml directly), and the seals with the
certificates by OpenSSL's command line, not by the code that made them."""

from __future__ import annotations

import base64
import shutil
import subprocess
import threading
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree
from portal_helpers import SmtpSink, drop, write_config
from sqlalchemy import select, update

from spaces import sat
from spaces.commerce import (
    billing,
    fiscal,
    invoice_cancel,
    invoice_records,
    invoicing,
    notices,
    pac,
    rfc_claims,
)
from spaces.commerce.invoice_pdf import verification_url
from spaces.commerce.payments import SandboxGateway
from spaces.core import audit, plans
from spaces.core.db import open_database
from spaces.core.errors import AlreadyExists, Forbidden, InvalidName, SpaceError
from spaces.core.mail import Mailer
from spaces.core.models import Account, AuditRecord, Invoice, Order, utcnow
from spaces.core.passwords import hash_password
from spaces.core.settings import ConfigError
from spaces.core.settings_file import load_settings

SAT = Path(__file__).resolve().parent.parent / "spaces" / "sat" / "cfd"
CFDI = "{http://www.sat.gob.mx/cfd/4}"
TFD = "{http://www.sat.gob.mx/TimbreFiscalDigital}"
OPERATOR = audit.Actor("operator:root", "127.0.0.1", "portal")


class Shop:
    def __init__(self, tmp_path: Path, smtp: SmtpSink, extra: str = "") -> None:
        cfg, self.pg = write_config(tmp_path, f'[mail]\nsmtp_host = "127.0.0.1"\n'
                                              f'smtp_port = {smtp.port}\n'
                                              f'smtp_security = "none"\n{extra}')
        self.config = cfg
        self.settings = load_settings(cfg)
        self.db = open_database(self.settings)
        self.mailer = Mailer(self.settings)
        self.smtp = smtp
        self.gateway = SandboxGateway(self.settings.webhook_secret)

    def account(self, username: str, rfc: str = "", razon: str = "", regimen: str = "",
                cp: str = "", uso: str = "G03") -> int:
        with self.db.session() as s:
            a = Account(username=username, email=f"{username}@example.mx",
                        password_hash=hash_password("una-clave-larga-1"), rfc=rfc or None,
                        razon_social=razon or None, regimen_fiscal=regimen or None,
                        codigo_postal=cp or None, uso_cfdi=uso, email_confirmed_at=utcnow())
            s.add(a)
            s.flush()
            return a.id

    def pay(self, account_id: int, tier: str = "4G", period: str = "monthly",
            invoice: bool = False, card: str = "4242424242424242") -> str:
        billing.add_to_cart(self.settings, self.db, account_id, tier, period, "username")
        order = billing.checkout(self.settings, self.db, account_id,
                                 self.settings.billing.contract_version, invoice=invoice)
        body, headers = self.gateway.charge(order.to_pay(), card)
        result = billing.process_event(self.settings, self.db, self.mailer,
                                       notices.Links("http://127.0.0.1"),
                                       self.gateway.parse_webhook(body, headers))
        assert result.status == "provisioned", result
        return order.reference

    def paid_at(self, reference: str, when: datetime) -> None:
        with self.db.session() as s:
            s.execute(update(Order).where(Order.reference == reference).values(paid_at=when))

    def issue(self, reference: str, **kw) -> invoice_records.InvoiceInfo:  # type: ignore[no-untyped-def]
        if "now" in kw and "pac" not in kw:
            kw["pac"] = self.pac_at(kw["now"])
        return invoicing.issue_for_order(self.settings, self.db, self.mailer, reference,
                                         actor=audit.SYSTEM, **kw)

    def pac_at(self, now: datetime) -> pac.SandboxPac:
        """The sandbox PAC with its clock at ``now`` (aware)."""
        return pac.SandboxPac(self.settings, clock=lambda: now)

    def issue_global(self, year: int, month: int,
                     now: datetime) -> invoice_records.InvoiceInfo | None:
        return invoicing.issue_global(self.settings, self.db, year, month, now=now,
                                      pac=self.pac_at(now))

    def xml(self, info: invoice_records.InvoiceInfo) -> bytes:
        return invoice_records.files(self.db, info.id)[0]


@pytest.fixture
def smtp():
    s = SmtpSink()
    yield s
    s.stop()


@pytest.fixture
def shop(tmp_path, smtp):
    sh = Shop(tmp_path, smtp)
    yield sh
    sh.db.dispose()
    drop(sh.pg)


def moral(shop: Shop, username: str = "despacho") -> int:
    return shop.account(username, "DLO0101019A5", "DESPACHO LOPEZ", "601", "06600")


def schema_errors(xml: bytes) -> list[str]:
    """SAT's XSD (CFDI 4.0 + TFD 1.1 and the catalogues they import), loaded here by
    lxml from the vendored files: nothing of spaces.sat is used."""
    cfdi = (SAT / "4" / "cfdv40.xsd").as_uri()
    tfd = (SAT / "TimbreFiscalDigital" / "TimbreFiscalDigitalv11.xsd").as_uri()
    wrapper = etree.fromstring(
        f'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">'
        f'<xs:import namespace="http://www.sat.gob.mx/cfd/4" schemaLocation="{cfdi}"/>'
        f'<xs:import namespace="http://www.sat.gob.mx/TimbreFiscalDigital" '
        f'schemaLocation="{tfd}"/></xs:schema>'.encode(), base_url=(SAT / "x.xsd").as_uri())
    schema = etree.XMLSchema(wrapper)
    ok = schema.validate(etree.fromstring(xml))
    return [] if ok else [str(e) for e in schema.error_log]


def xslt(path: Path, doc: etree._Element) -> str:
    return str(etree.XSLT(etree.parse(str(path)))(etree.ElementTree(doc)))


def openssl_verifies(cert_der: bytes, data: str, signature_b64: str, base: Path) -> bool:
    tmp = base / "openssl"
    tmp.mkdir(exist_ok=True)
    (tmp / "c.der").write_bytes(cert_der)
    pub = subprocess.run(["openssl", "x509", "-inform", "der", "-in", str(tmp / "c.der"),
                          "-pubkey", "-noout"], capture_output=True, check=True).stdout
    (tmp / "k.pem").write_bytes(pub)
    (tmp / "data").write_bytes(data.encode("utf-8"))
    (tmp / "sig").write_bytes(base64.b64decode(signature_b64))
    r = subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(tmp / "k.pem"),
                        "-signature", str(tmp / "sig"), str(tmp / "data")],
                       capture_output=True, text=True)
    return r.returncode == 0 and "Verified OK" in r.stdout


# -- the CFDI -------------------------------------------------------------------------------

@pytest.mark.db
def test_a_factura_asked_at_checkout_is_a_cfdi_sats_schemas_accept_with_the_receipts_totals(
        shop):
    who = moral(shop)
    ref = shop.pay(who, "4G", "annual", invoice=True)  # 780.00 - 15 % + IVA: 769.08
    [info] = invoice_records.for_order(shop.db, ref)
    assert info.status == "valid" and info.uuid and info.sandbox
    xml = shop.xml(info)
    assert schema_errors(xml) == []
    root = etree.fromstring(xml)
    order = billing.get_order(shop.db, ref)
    assert root.get("Version") == "4.0" and root.get("TipoDeComprobante") == "I"
    assert root.get("MetodoPago") == "PUE" and root.get("FormaPago") == "04"
    assert root.get("Moneda") == "MXN" and root.get("Exportacion") == "01"
    assert root.get("LugarExpedicion") == shop.settings.invoicing.issuer_postal_code
    # Every amount is the receipt's.
    assert Decimal(root.get("SubTotal")) == order.totals.price == Decimal("780.00")
    assert Decimal(root.get("Descuento")) == order.totals.discount == Decimal("117.00")
    taxes = root.find(f"{CFDI}Impuestos")
    assert Decimal(taxes.get("TotalImpuestosTrasladados")) == order.totals.tax
    assert Decimal(root.get("Total")) == order.totals.total == Decimal("769.08")
    [tras] = taxes.findall(f"{CFDI}Traslados/{CFDI}Traslado")
    assert (tras.get("Impuesto"), tras.get("TipoFactor"), tras.get("TasaOCuota")) == (
        "002", "Tasa", "0.160000")
    assert Decimal(tras.get("Base")) == order.totals.subtotal
    [c] = root.findall(f"{CFDI}Conceptos/{CFDI}Concepto")
    assert (c.get("ClaveProdServ"), c.get("ClaveUnidad"), c.get("ObjetoImp")) == (
        "81112006", "E48", "02")
    assert c.get("NoIdentificacion") == ref
    assert "Plan 4G por un año, espacio" in c.get("Descripcion")
    rc = root.find(f"{CFDI}Receptor")
    assert (rc.get("Rfc"), rc.get("Nombre"), rc.get("RegimenFiscalReceptor"),
            rc.get("DomicilioFiscalReceptor"), rc.get("UsoCFDI")) == (
        "DLO0101019A5", "DESPACHO LOPEZ", "601", "06600", "G03")
    tfd = root.find(f"{CFDI}Complemento/{TFD}TimbreFiscalDigital")
    assert tfd.get("UUID") == info.uuid and tfd.get("Version") == "1.1"
    assert "SIN VALIDEZ FISCAL" in tfd.get("Leyenda")
    # E-mailed with its XML and PDF.
    [mail] = shop.smtp.find("Su factura", "despacho@example.mx")
    files = {p.get_filename(): p.get_content() for p in mail.iter_attachments()}
    assert files[f"{info.name}-{info.uuid}.xml"] == xml
    assert files[f"{info.name}-{info.uuid}.pdf"].startswith(b"%PDF-")
    assert "NO tiene validez fiscal" in mail.get_body(("plain",)).get_content()


def test_the_cfdi_seal_and_the_sandbox_timbre_verify_with_their_certificates(shop, tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    info = shop.issue(shop.pay(moral(shop)))
    xml = shop.xml(info)
    root = etree.fromstring(xml)
    tfd = root.find(f"{CFDI}Complemento/{TFD}TimbreFiscalDigital")
    # The CFDI's sello: SAT's XSLT for the cadena original, its own certificate.
    cadena = xslt(SAT / "4" / "cadenaoriginal_4_0" / "cadenaoriginal_4_0.xslt", root)
    assert cadena.startswith("||4.0|RG|") and cadena.endswith("||")
    cert = base64.b64decode(root.get("Certificado"))
    assert openssl_verifies(cert, cadena, root.get("Sello"), tmp_path)
    serial = subprocess.run(["openssl", "x509", "-inform", "der", "-noout", "-serial"],
                            input=cert, capture_output=True, check=True).stdout.decode()
    assert bytes.fromhex(serial.strip().split("=")[1]).decode() == root.get("NoCertificado")
    # The timbre's SelloSAT: the TFD's XSLT, the sandbox PAC's certificate (on disk).
    pac_cer = (pac.sandbox_dir(shop.settings) / "pac.cer").read_bytes()
    tfd_cadena = xslt(SAT / "TimbreFiscalDigital" / "cadenaoriginal_TFD_1_1.xslt", tfd)
    assert tfd_cadena.startswith(f"||1.1|{info.uuid}|")
    assert openssl_verifies(pac_cer, tfd_cadena, tfd.get("SelloSAT"), tmp_path)
    assert tfd.get("SelloCFD") == root.get("Sello")
    serial = subprocess.run(["openssl", "x509", "-inform", "der", "-noout", "-serial"],
                            input=pac_cer, capture_output=True, check=True).stdout.decode()
    assert bytes.fromhex(serial.strip().split("=")[1]).decode() == tfd.get("NoCertificadoSAT")
    # A changed amount no longer verifies (the check can fail).
    forged = cadena.replace("|75.40|", "|7.54|")
    assert forged != cadena and not openssl_verifies(cert, forged, root.get("Sello"), tmp_path)


@pytest.mark.parametrize("price,discount,period", [
    ("65.00", "0", "monthly"), ("0.25", "50", "monthly"), ("65.03", "0", "monthly"),
    ("99.99", "7.5", "quarterly"), ("133.33", "15", "annual"), ("0.01", "0", "bimonthly"),
])
def test_amounts_are_the_receipts_for_prices_that_round(tmp_path, smtp, price, discount,
                                                        period):
    sh = Shop(tmp_path, smtp, f'[billing]\ndiscount_{period} = "{discount}"\n'
                              f'[tiers.4G]\nquota = "4G"\nmonthly_price = "{price}"\n')
    try:
        info = sh.issue(sh.pay(moral(sh), "4G", period))
        order = billing.get_order(sh.db, info.order_reference or "")
        root = etree.fromstring(sh.xml(info))
        q = plans.quote(sh.settings, "4G", period)
        assert Decimal(root.get("Total")) == order.totals.total == q.total
        assert Decimal(root.get("SubTotal")) == q.price
        assert Decimal(root.get("Descuento", "0")) == q.discount
        tax = root.find(f"{CFDI}Impuestos").get("TotalImpuestosTrasladados")
        assert Decimal(tax) == q.tax
        assert schema_errors(sh.xml(info)) == []
    finally:
        sh.db.dispose()
        drop(sh.pg)


def test_the_pdf_is_a_readable_representacion_impresa_with_qr_uuid_and_seals(shop, tmp_path):
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    info = shop.issue(shop.pay(moral(shop)))
    xml, pdf = invoice_records.files(shop.db, info.id)
    (tmp_path / "f.pdf").write_bytes(pdf or b"")
    text = subprocess.run(["pdftotext", "-layout", str(tmp_path / "f.pdf"), "-"],
                          capture_output=True, text=True, check=True).stdout
    root = etree.fromstring(xml)
    tfd = root.find(f"{CFDI}Complemento/{TFD}TimbreFiscalDigital")
    for expected in (info.uuid, "SIN VALIDEZ FISCAL", "DESPACHO LOPEZ", "DLO0101019A5",
                     "Gastos en general", "81112006", "$75.40", "Sello digital del CFDI",
                     "Sello digital del SAT", root.get("Sello")[:40], tfd.get("SelloSAT")[:40],
                     "representación impresa de un CFDI"):
        assert expected in text.replace("\n", " ") or expected in text, expected
    url = verification_url(xml)
    assert url == (f"https://verificacfdi.facturaelectronica.sat.gob.mx/default.aspx"
                             f"?id={info.uuid}&re=EKU9003173C9&rr=DLO0101019A5&tt=75.4"
                             f"&fe={root.get('Sello')[-8:]}")
    if shutil.which("zbarimg") and shutil.which("pdftoppm"):
        subprocess.run(["pdftoppm", "-png", "-r", "150", "-f", "1", "-l", "1",
                        str(tmp_path / "f.pdf"), str(tmp_path / "p")], check=True)
        png = next(tmp_path.glob("p*.png"))
        qr = subprocess.run(["zbarimg", "--raw", "-q", str(png)], capture_output=True,
                            text=True).stdout.strip()
        assert qr == url


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


# -- the CSD ------------------------------------------------------------------------------

def test_the_csd_comes_from_the_environment_and_must_be_the_issuers(shop, monkeypatch,
                                                                    tmp_path):
    cer, key = pac._test_certificate("XOJI740919U48", "OTRA PERSONA", "30001000000500000009",
                                     None, datetime.now(pac.UTC))
    (tmp_path / "o.cer").write_bytes(cer)
    (tmp_path / "o.key").write_bytes(key)
    monkeypatch.setenv("RESGUARDO_CSD_CERT", str(tmp_path / "o.cer"))
    monkeypatch.setenv("RESGUARDO_CSD_KEY", str(tmp_path / "o.key"))
    monkeypatch.setenv("RESGUARDO_CSD_PASSWORD", pac.SANDBOX_KEY_PASSWORD.decode())
    with pytest.raises(pac.InvoicingUnavailable, match="XOJI740919U48"):
        pac.load_csd(shop.settings)
    ref = shop.pay(moral(shop))
    with pytest.raises(pac.InvoicingUnavailable):
        shop.issue(ref)
    assert invoice_records.for_order(shop.db, ref) == []  # nothing signed, nothing kept
    monkeypatch.setenv("RESGUARDO_CSD_PASSWORD", "otra")
    with pytest.raises(pac.InvoicingUnavailable, match="no se pudo leer"):
        pac.load_csd(shop.settings)
    # The issuer's own CSD from the environment seals the factura.
    cer, key = pac._test_certificate("EKU9003173C9", "ESCUELA KEMPER URGATE",
                                     "30001000000500000042", None, datetime.now(pac.UTC))
    (tmp_path / "e.cer").write_bytes(cer)
    (tmp_path / "e.key").write_bytes(key)
    monkeypatch.setenv("RESGUARDO_CSD_CERT", str(tmp_path / "e.cer"))
    monkeypatch.setenv("RESGUARDO_CSD_KEY", str(tmp_path / "e.key"))
    monkeypatch.setenv("RESGUARDO_CSD_PASSWORD", pac.SANDBOX_KEY_PASSWORD.decode())
    info = shop.issue(ref)
    assert etree.fromstring(shop.xml(info)).get("NoCertificado") == "30001000000500000042"


@pytest.mark.parametrize("text,word", [
    ('[invoicing]\ncsd_password = "x"\n', "clave desconocida"),
    ('[invoicing]\npac = "finkok"\n', "invoicing.pac"),
    ('[invoicing]\npac = "sandbox"\nissuer_rfc = "no-rfc"\n', "issuer_rfc"),
    ('[invoicing]\nissuer_postal_code = "1234"\n', "issuer_postal_code"),
    ('[invoicing]\nissuer_regime = "612"\n', "persona moral"),
])
def test_the_csd_and_pac_secrets_are_not_config_keys_and_bad_values_name_the_file(
        tmp_path, text, word):
    cfg = tmp_path / "c.toml"
    cfg.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg)
    assert word in str(exc.value) and str(cfg) in str(exc.value)


# -- cancellation -------------------------------------------------------------------------

@pytest.mark.db
def test_an_operator_cancels_with_sats_motivos_and_each_cancellation_is_audited(shop):
    a = moral(shop)
    first = shop.issue(shop.pay(a))
    with pytest.raises(InvalidName, match="04"):
        invoice_cancel.cancel(shop.settings, shop.db, first.id, "04", actor=OPERATOR)
    with pytest.raises(InvalidName, match="Sustituir"):
        invoice_cancel.cancel(shop.settings, shop.db, first.id, "01", actor=OPERATOR)
    with pytest.raises(InvalidName):
        invoice_cancel.cancel(shop.settings, shop.db, first.id, "05", actor=OPERATOR)
    done = invoice_cancel.cancel(shop.settings, shop.db, first.id, "02", actor=OPERATOR)
    assert done.status == "cancelled" and done.cancel_reason == "02"
    with shop.db.session() as s:
        ack = s.get(Invoice, first.id).cancel_ack
    assert first.uuid in ack and 'Motivo="02"' in ack
    with pytest.raises(Forbidden):
        invoice_cancel.cancel(shop.settings, shop.db, first.id, "03", actor=OPERATOR)
    # The operator issues it again; then replaces it (01): new one related, old cancelled.
    again = shop.issue(first.order_reference, operator=True)
    assert again.uuid != first.uuid
    new = invoicing.substitute(shop.settings, shop.db, shop.mailer, again.id, actor=OPERATOR)
    root = etree.fromstring(shop.xml(new))
    rel = root.find(f"{CFDI}CfdiRelacionados")
    assert rel.get("TipoRelacion") == "04"
    assert rel.find(f"{CFDI}CfdiRelacionado").get("UUID") == again.uuid
    assert schema_errors(shop.xml(new)) == []
    old = invoice_records.get_invoice(shop.db, again.id)
    assert old.status == "cancelled" and old.cancel_reason == "01"
    assert old.cancel_replacement == new.uuid
    with shop.db.session() as s:
        rows = s.execute(select(AuditRecord.action, AuditRecord.user, AuditRecord.detail)
                         .where(AuditRecord.action.in_(("invoice_issued",
                                                        "invoice_cancelled")))
                         .order_by(AuditRecord.id)).all()
    assert [r.action for r in rows] == ["invoice_issued", "invoice_cancelled",
                                        "invoice_issued", "invoice_issued",
                                        "invoice_cancelled"]
    cancels = [r for r in rows if r.action == "invoice_cancelled"]
    assert all(r.user == "operator:root" for r in cancels)
    assert "motivo 02" in cancels[0].detail and f"sustituida por {new.uuid}" in cancels[1].detail


@pytest.mark.db
def test_a_cancelled_global_factura_releases_its_sales_for_the_next_one(shop):
    ref = shop.pay(shop.account("anon"))
    shop.paid_at(ref, datetime(2026, 3, 10, 12, 0))
    after = datetime(2026, 4, 1, 12, 0).replace(tzinfo=pac.UTC)
    g = shop.issue_global(2026, 3, after)
    assert g is not None
    invoice_cancel.cancel(shop.settings, shop.db, g.id, "04", actor=OPERATOR)
    assert billing.get_order(shop.db, ref).invoice_state == "none"
    g2 = shop.issue_global(2026, 3, after)
    assert g2 is not None and g2.id != g.id and g2.status == "valid"


def test_the_vendored_catalogue_codes_are_sats(shop):
    from spaces.sat import catalogs

    text = (SAT / "catalogos" / "catCFDI.xsd").read_text(encoding="utf-8")

    def enum(name: str) -> set[str]:
        import re

        body = re.search(rf'simpleType name="{name}">(.*?)</xs:simpleType>', text, re.S)
        return set(re.findall(r'enumeration value="([^"]*)"', body.group(1)))

    assert set(catalogs.REGIMENES) <= enum("c_RegimenFiscal")
    assert set(catalogs.USOS) <= enum("c_UsoCFDI")
    assert set(catalogs.FORMA_PAGO.values()) <= enum("c_FormaPago")
    assert set(catalogs.MOTIVOS_CANCELACION) == {"01", "02", "03", "04"}
    assert {"81112006", "01010101"} <= enum("c_ClaveProdServ")
    assert {"E48", "ACT"} <= enum("c_ClaveUnidad")
    assert "06600" in sat.postal_codes() and "00001" not in sat.postal_codes()


def test_sandbox_test_certificates_are_made_once_even_by_processes_at_once(shop):
    results: list[bytes] = []

    def make() -> None:
        d = pac.ensure_test_certificates(shop.settings)
        results.append((d / "pac.cer").read_bytes())

    threads = [threading.Thread(target=make) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and len(results) == 4
    left = [p.name for p in pac.sandbox_dir(shop.settings).parent.iterdir()]
    assert left == ["sandbox"]


@pytest.mark.db
def test_the_command_line_issues_the_global_factura_lists_and_cancels(shop):
    from conftest import run_cli

    ref = shop.pay(shop.account("anonimo"))
    shop.paid_at(ref, datetime(2026, 5, 10, 12, 0))
    cli = ["--config", str(shop.config)]
    # The lifecycle run issues the month before's global factura (once).
    r = run_cli([*cli, "lifecycle", "run", "--today", "2026-06-01"])
    assert r.returncode == 0, r.stderr
    assert "factura global de 2026-05 emitida" in r.stdout
    r = run_cli([*cli, "lifecycle", "run", "--today", "2026-06-01"])
    assert "factura global" not in r.stdout
    r = run_cli([*cli, "invoice", "list", "--json"])
    [row] = __import__("json").loads(r.stdout)
    assert (row["kind"], row["period"], row["status"], row["receptor_rfc"], row["total"]) == (
        "global", "2026-05", "valid", "XAXX010101000", "75.40")
    r = run_cli([*cli, "invoice", "global", "--month", "2026-13"])
    assert r.returncode != 0
    r = run_cli([*cli, "invoice", "cancel", str(row["id"]), "04"])
    assert r.returncode == 0 and "cancelled" in r.stdout, r.stderr
    with shop.db.session() as s:
        who = s.scalar(select(AuditRecord.user).where(AuditRecord.action == "invoice_cancelled"))
    assert who.startswith("cli:")


class ReceptorMustAcceptPac(pac.SandboxPac):
    """A PAC whose cancellations wait for the receptor, who answers ``answer``."""

    answer: str | None = None

    def cancel(self, request: pac.CancelRequest) -> pac.Cancelled:
        return pac.Cancelled("pending", "<Acuse EstatusUUID='202'/>")

    def cancellation_status(self, request: pac.CancelRequest) -> pac.Cancelled | None:
        return pac.Cancelled(self.answer, "<Acuse/>") if self.answer else None


@pytest.mark.db
def test_a_cancellation_the_receptor_must_accept_ends_when_it_answers(shop):
    slow = ReceptorMustAcceptPac(shop.settings)
    first = shop.issue(shop.pay(moral(shop)))
    assert invoice_cancel.cancel(shop.settings, shop.db, first.id, "03", actor=OPERATOR,
                                 pac=slow).status == "cancel_pending"
    invoicing.run(shop.settings, shop.db, shop.mailer, pac=slow)  # no answer yet
    assert invoice_records.get_invoice(shop.db, first.id).status == "cancel_pending"
    slow.answer = "rejected"
    invoicing.run(shop.settings, shop.db, shop.mailer, pac=slow)
    assert invoice_records.get_invoice(shop.db, first.id).status == "valid"
    invoice_cancel.cancel(shop.settings, shop.db, first.id, "03", actor=OPERATOR, pac=slow)
    slow.answer = "cancelled"
    invoicing.run(shop.settings, shop.db, shop.mailer, pac=slow)
    assert invoice_records.get_invoice(shop.db, first.id).status == "cancelled"
    # A replaced one waiting for its receptor never blocks its substitute.
    second = shop.issue(first.order_reference, operator=True)
    slow.answer = None
    new = invoicing.substitute(shop.settings, shop.db, shop.mailer, second.id,
                               actor=OPERATOR, pac=slow)
    assert invoice_records.get_invoice(shop.db, second.id).status == "pending_01"
    assert invoice_records.get_invoice(shop.db, new.id).status == "valid"
    with shop.db.session() as s:
        actions = list(s.scalars(select(AuditRecord.action).order_by(AuditRecord.id)
                                 .where(AuditRecord.action.like("invoice%"))))
    assert actions.count("invoice_cancel_rejected") == 1
    assert actions.count("invoice_cancelled") == 4


@pytest.mark.db
def test_a_refund_cancels_the_factura_with_motivo_03_and_is_audited(shop):
    from spaces.commerce import refunds
    from spaces.core.models import PaymentEvent

    invoiced = shop.issue(shop.pay(moral(shop)))
    done = refunds.refund_order(shop.settings, shop.db, invoiced.order_reference or "",
                                actor=OPERATOR)
    assert done.factura == f"cancelada ({invoiced.uuid})" and done.amount == "$75.40"
    after = invoice_records.get_invoice(shop.db, invoiced.id)
    assert after.status == "cancelled" and after.cancel_reason == "03"
    assert billing.get_order(shop.db, invoiced.order_reference or "").status == "refunded"
    with pytest.raises(Forbidden):
        refunds.refund_order(shop.settings, shop.db, invoiced.order_reference or "",
                             actor=OPERATOR)
    with pytest.raises(SpaceError):
        shop.issue(invoiced.order_reference or "", operator=True)
    # Not invoiced yet: refunded, and it never enters the month's global factura.
    plain = shop.pay(shop.account("sinfactura"))
    shop.paid_at(plain, datetime(2026, 7, 3, 12, 0))
    assert refunds.refund_order(shop.settings, shop.db, plain, actor=OPERATOR).factura \
        == "sin factura"
    assert shop.issue_global(2026, 7, datetime(2026, 8, 2).replace(tzinfo=pac.UTC)) is None
    # In a global factura: recorded, and the operator is told a nota de crédito is due.
    sold = shop.pay(shop.account("ventaglobal"))
    shop.paid_at(sold, datetime(2026, 7, 4, 12, 0))
    assert shop.issue_global(2026, 7, datetime(2026, 8, 2).replace(tzinfo=pac.UTC))
    assert "nota de crédito" in refunds.refund_order(shop.settings, shop.db, sold,
                                                     actor=OPERATOR).factura
    with shop.db.session() as s:
        refunds_audited = s.execute(select(AuditRecord.user, AuditRecord.detail)
                                    .where(AuditRecord.action == "order_refunded")).all()
        events = s.scalars(select(PaymentEvent.outcome)
                           .where(PaymentEvent.outcome == "refunded")).all()
    assert len(refunds_audited) == 3 and len(events) == 3
    assert all(r.user == "operator:root" for r in refunds_audited)
