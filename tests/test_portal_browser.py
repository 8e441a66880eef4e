"""The acceptance test: a real browser (Debian's chromium driven by Playwright)
walks the customer's whole path against the real server, and the drive is then
used over WebDAV with the credentials the e-mails gave."""

from __future__ import annotations

import email
import os
import re
import shutil
from email import policy
from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.browser


def read_outbox(outbox: Path) -> list[email.message.EmailMessage]:
    """Every message in the outbox, oldest first."""
    msgs = []
    for f in sorted(outbox.glob("*.eml"), key=lambda p: (p.stat().st_mtime_ns, p.name)):
        msgs.append(email.message_from_bytes(f.read_bytes(), policy=policy.default))
    return msgs


def last_mail(outbox: Path, subject_part: str) -> tuple[str, str]:
    found = [m for m in read_outbox(outbox) if subject_part in str(m["Subject"])]
    assert found, f"no e-mail with {subject_part!r} in {outbox}"
    m = found[-1]
    return str(m["To"]), m.get_content()


@pytest.fixture
def browser():
    if shutil.which("chromium") is None and not Path(CHROMIUM).exists():
        if os.environ.get("RESGUARDO_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is not installed (Debian package 'chromium'; "
                        "'make test' installs it)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    # Every expectation waits as long as a page action may (Playwright's default is 5 s):
    # a loaded machine must make a test slower, not red.
    expect.set_options(timeout=30_000)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def test_sign_up_to_a_paid_4g_drive_then_upload_and_download_over_webdav(make_server,
                                                                          browser):
    srv = make_server().start()
    outbox = srv.data / "outbox"
    page = browser.new_page(locale="es-MX")
    page.set_default_timeout(30_000)

    # 1. Sign up; the confirmation arrives in the outbox.
    page.goto(srv.url + "/")
    page.get_by_role("link", name="Crear cuenta").first.click()
    page.fill("#username", "Despacho-Lopez")
    page.fill("#email", "contabilidad@lopez.example.mx")
    page.fill("#password", "una-clave-larga-1")
    page.get_by_role("button", name="Crear cuenta").click()
    expect(page.locator("h1")).to_contain_text("Revise su correo")
    to, body = last_mail(outbox, "Confirme su correo")
    assert to == "contabilidad@lopez.example.mx"
    confirm_link = re.search(r"https?://\S+/cuenta/confirmar/\S+", body).group(0)
    page.goto(confirm_link)
    page.click("#confirmar")

    # 2. The free space banner; activating it shows its drive URL and storage.
    expect(page.locator("body")).to_contain_text("Espacio 1G gratis — comienza ahora")
    page.click("#activar-gratis")
    expect(page.locator("#espacio")).to_contain_text("despacho-lopez")
    expect(page.locator("#unidad")).to_have_text(f"{srv.url}/dav/despacho-lopez/")
    expect(page.locator("body")).to_contain_text("1 GB")
    assert srv.show("despacho-lopez")["tier"] == "1G"

    # 3. Buy 4G monthly: the breakdown follows the selection (no "Ver precio" to
    # press) and names the space it is for; the cart gets exactly what it shows.
    page.get_by_role("link", name="Planes").first.click()
    expect(page.locator("#ver-precio")).to_be_hidden()
    page.select_option("#tier", "4G")
    page.select_option("#period", "annual")
    breakdown = page.locator("table.breakdown")
    expect(breakdown).to_contain_text("$769.08")
    expect(page.locator("#espacio-resultante")).to_contain_text("despacho-lopez")
    page.select_option("#period", "monthly")
    page.check("input[name=naming][value=username]")
    for expected in ("Plan 4G por un mes", "$65.00", "Descuento (0 %)", "$0.00",
                     "Subtotal", "IVA 16 %", "$10.40", "Total", "$75.40"):
        expect(breakdown).to_contain_text(expected)
    page.click("#agregar")
    expect(page.locator("#total")).to_contain_text("$75.40")

    # 4. Checkout: accept the contract, pay with the sandbox's test card.
    page.click("#pagar")
    page.check("#accept")
    page.click("#continuar-pago")
    expect(page.locator("#total")).to_contain_text("$75.40")
    page.fill("#number", "4242 4242 4242 4242")
    page.fill("#name", "Ana López")
    page.fill("#expiry", "12/30")
    page.fill("#cvc", "123")
    page.click("#pagar-tarjeta")
    expect(page.locator("#estado")).to_have_text("Pago recibido")
    expect(page.locator("#total")).to_contain_text("$75.40")

    # 5. Provisioned at once; the e-mail carries the access data and a link.
    shown = srv.show("despacho-lopez")
    assert shown["tier"] == "4G" and shown["quota_bytes"] == 4 * 2**30
    assert shown["paid_until"] is not None
    to, body = last_mail(outbox, "Datos de acceso a su espacio despacho-lopez (4G)")
    assert to == "contabilidad@lopez.example.mx"
    drive_url = re.search(r"Dirección de la unidad: (\S+)", body).group(1)
    user = re.search(r"Usuario: (\S+)", body).group(1)
    link = re.search(r"https?://\S+/acceso/\S+", body).group(0)
    assert drive_url == f"{srv.url}/dav/despacho-lopez/" and user == "despacho-lopez"
    assert "una-clave-larga-1" not in body  # never a password in an e-mail

    # The drive refuses everyone until the password is set from the link.
    assert requests.request("PROPFIND", drive_url, auth=(user, "una-clave-larga-1"),
                            headers={"Depth": "0"}, timeout=10).status_code == 401
    page.goto(link)
    expect(page.locator("#usuario")).to_have_text(user)
    page.fill("#password", "clave-de-la-unidad-9")
    page.fill("#confirm", "clave-de-la-unidad-9")
    page.get_by_role("button", name="Guardar contraseña").click()
    expect(page.locator("h1")).to_contain_text("Contraseña guardada")

    # 6. Upload and download over WebDAV at the e-mailed URL with those credentials.
    content = "Balanza de comprobación, enero\n".encode() * 100
    auth = (user, "clave-de-la-unidad-9")
    r = requests.put(drive_url + "balanza-enero.txt", data=content, auth=auth, timeout=10)
    assert r.status_code == 201, r.text
    r = requests.get(drive_url + "balanza-enero.txt", auth=auth, timeout=10)
    assert r.status_code == 200 and r.content == content
    assert srv.show("despacho-lopez")["used_bytes"] == len(content)

    # The link worked once.
    page.goto(link)
    expect(page.locator("body")).to_contain_text("no es válido")


def test_a_customer_pays_with_fiscal_data_and_downloads_a_factura_sat_accepts(make_server,
                                                                               browser,
                                                                               tmp_path):
    """The factura's acceptance test: fiscal data at checkout, the sandbox card, then the
    XML downloaded from the order page passes SAT's XSD and carries the receipt's totals,
    and the PDF downloads too."""
    from decimal import Decimal

    from invoicing_helpers import schema_errors
    from lxml import etree

    srv = make_server().start()
    outbox = srv.data / "outbox"
    page = browser.new_page(locale="es-MX", accept_downloads=True)
    page.set_default_timeout(30_000)
    page.goto(srv.url + "/cuenta/registro")
    page.fill("#username", "despacho-ruiz")
    page.fill("#email", "facturas@ruiz.example.mx")
    page.fill("#password", "una-clave-larga-1")
    page.get_by_role("button", name="Crear cuenta").click()
    _, body = last_mail(outbox, "Confirme su correo")
    page.goto(re.search(r"https?://\S+/cuenta/confirmar/\S+", body).group(0))
    page.click("#confirmar")

    # Buy 4G for three months (5 % off), asking for the factura with the fiscal data.
    page.goto(srv.url + "/planes")
    page.select_option("#tier", "4G")
    page.select_option("#period", "quarterly")
    page.check("input[name=naming][value=username]")
    expect(page.locator("table.breakdown")).to_contain_text("$214.89")
    page.click("#agregar")
    expect(page.locator("#total")).to_contain_text("$214.89")
    page.click("#pagar")
    page.check("#invoice")
    page.fill("#rfc", "xoji740919u48")
    page.fill("#razon_social", "Ingrid Xodar Jiménez")
    page.select_option("#regimen_fiscal", "612")
    page.fill("#codigo_postal", "88965")
    page.select_option("#uso_cfdi", "G03")
    page.check("#accept")
    page.click("#continuar-pago")
    page.fill("#number", "4000 0566 5566 5556")  # the sandbox's debit card
    page.fill("#name", "Ingrid Xodar")
    page.fill("#expiry", "12/30")
    page.fill("#cvc", "123")
    page.click("#pagar-tarjeta")
    expect(page.locator("#estado")).to_have_text("Pago recibido")
    expect(page.locator("#factura-uuid")).to_have_text(re.compile(r"^[0-9A-F-]{36}$"))
    uuid = page.locator("#factura-uuid").inner_text()
    order_url = page.url

    with page.expect_download() as dl:
        page.click("#factura-xml")
    xml_path = tmp_path / "factura.xml"
    dl.value.save_as(xml_path)
    with page.expect_download() as dl:
        page.click("#factura-pdf")
    pdf_path = tmp_path / "factura.pdf"
    dl.value.save_as(pdf_path)
    xml = xml_path.read_bytes()
    assert schema_errors(xml) == []
    assert pdf_path.read_bytes().startswith(b"%PDF-")

    # The totals are the receipt's, as the receipt page prints them.
    page.goto(order_url)
    page.get_by_role("link", name="Ver recibo").click()
    receipt_total = page.locator("#total").inner_text().removesuffix(" MXN").strip()
    cfdi = "{http://www.sat.gob.mx/cfd/4}"
    root = etree.fromstring(xml)
    total = Decimal(root.get("Total"))
    assert receipt_total == f"${total:,.2f}" == "$214.89"  # 195.00 - 9.75 + 29.64
    assert Decimal(root.get("SubTotal")) == Decimal("195.00")
    assert Decimal(root.get("Descuento")) == Decimal("9.75")
    taxes = root.find(f"{cfdi}Impuestos").get("TotalImpuestosTrasladados")
    assert Decimal(taxes) == Decimal("29.64")
    assert root.get("FormaPago") == "28" and root.get("MetodoPago") == "PUE"
    receptor = root.find(f"{cfdi}Receptor")
    assert (receptor.get("Rfc"), receptor.get("Nombre"), receptor.get("UsoCFDI")) == (
        "XOJI740919U48", "INGRID XODAR JIMÉNEZ", "G03")
    tfd = root.find(f"{cfdi}Complemento/{{http://www.sat.gob.mx/TimbreFiscalDigital}}"
                    "TimbreFiscalDigital")
    assert tfd.get("UUID") == uuid
    # And it came by e-mail, XML and PDF attached.
    found = [m for m in read_outbox(outbox) if "Su factura" in str(m["Subject"])]
    assert len(found) == 1
    names = sorted(p.get_filename() for p in found[0].iter_attachments())
    assert names == sorted([f"RG-1-{uuid}.pdf", f"RG-1-{uuid}.xml"])


def test_without_javascript_the_cart_gets_the_period_selected_not_the_one_last_shown(
        make_server, browser):
    """The Periodo bug: choose Anual, press "Agregar al carrito" without "Ver
    precio": the cart must get the annual plan (the form's own fields are sent)."""
    srv = make_server().start()
    outbox = srv.data / "outbox"
    context = browser.new_context(locale="es-MX", java_script_enabled=False)
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(srv.url + "/cuenta/registro")
    page.fill("#username", "despacho-sosa")
    page.fill("#email", "sosa@example.mx")
    page.fill("#password", "una-clave-larga-1")
    page.get_by_role("button", name="Crear cuenta").click()
    expect(page.locator("h1")).to_contain_text("Revise su correo")
    _, body = last_mail(outbox, "Confirme su correo")
    page.goto(re.search(r"https?://\S+/cuenta/confirmar/\S+", body).group(0))
    page.click("#confirmar")
    expect(page.locator("body")).to_contain_text("Correo confirmado")
    page.goto(srv.url + "/planes")
    expect(page.locator("#ver-precio")).to_be_visible()  # the page works without a script
    expect(page.locator("table.breakdown")).to_contain_text("$75.40")
    page.select_option("#period", "annual")
    page.click("#agregar")
    expect(page.locator("#total")).to_contain_text("$769.08")
    page.goto(srv.url + "/planes")
    page.select_option("#period", "quarterly")
    page.click("#ver-precio")
    expect(page.locator("table.breakdown")).to_contain_text("$214.89")
    context.close()
