"""Facturación: the CFDI 4.0 of a paid order, stamped by the sandbox PAC, on a real
database. The XML is checked with SAT's own schemas and transforms, the seals with the
certificates by OpenSSL's command line, not by the code that made them; the amounts are
the receipt's, the PDF readable, the catalogue codes SAT's, and the CSD comes from the
environment and must be the issuer's."""

from __future__ import annotations

import base64
import shutil
import subprocess
import threading
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from invoicing_helpers import CFDI, SAT, Shop, moral, schema_errors
from lxml import etree
from portal_helpers import drop

from spaces import sat
from spaces.commerce import (
    billing,
    invoice_records,
    pac,
)
from spaces.commerce.invoice_pdf import verification_url
from spaces.core import plans
from spaces.core.settings import ConfigError
from spaces.core.settings_file import load_settings

TFD = "{http://www.sat.gob.mx/TimbreFiscalDigital}"


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
