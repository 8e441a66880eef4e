"""The customer's whole path in a real browser at a desk (1280 px) and on a phone
(390 px): sign-up -> free space -> upgrade with the live price -> payment -> a
plan change credited for its unused days -> payment, in es-MX formats and Mexico
City time, every main page without serious or critical accessibility violations
(axe-core through Playwright) and, on the phone, nothing wider than the screen.

axe-core comes from the test extra (axe-playwright-python, pinned, which ships
axe.min.js). Screenshots of each page are left in the test's tmp_path."""

from __future__ import annotations

import os
import re
from datetime import date

import pytest
from playwright.sync_api import expect
from test_portal_browser import browser, last_mail  # noqa: F401 - the fixture

from spaces.core import formats, plans
from spaces.core.settings import Settings

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def axe():
    try:
        from axe_playwright_python.sync_playwright import Axe
    except ImportError:
        if os.environ.get("RESGUARDO_REQUIRE_BROWSER") == "1":
            pytest.fail("axe-playwright-python (axe-core) is not installed: make venv")
        pytest.skip("axe-core is not installed (pip install -e '.[test]')")
    return Axe()


class Walk:
    def __init__(self, page, axe, shots, width):
        self.page, self.axe, self.shots, self.width = page, axe, shots, width
        self.checked: list[str] = []

    def check(self, name: str) -> None:
        """axe on the page as it is now: no serious or critical violation; on a
        phone, nothing wider than the screen; a screenshot for the record."""
        page = self.page
        page.wait_for_load_state("load")
        page.screenshot(path=str(self.shots / f"{self.width}-{name}.png"), full_page=True)
        found = self.axe.run(page).response["violations"]
        bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in found
               if v["impact"] in ("serious", "critical")]
        assert bad == [], f"{name}: {bad}"
        wide = page.evaluate("document.documentElement.scrollWidth")
        assert wide <= self.width, f"{name}: the page is {wide} px wide on a {self.width} px screen"
        self.checked.append(name)

    def fits(self, locator) -> None:
        """``locator`` is on the screen whole, not cut at its right edge."""
        expect(locator).to_be_visible()
        box = locator.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= self.width + 0.5, box


@pytest.mark.parametrize("width, height", [(1280, 900), (390, 844)], ids=["desk", "phone"])
def test_sign_up_free_space_upgrade_live_price_prorated_change_and_payment(
        make_server, browser, axe, tmp_path, width, height):  # noqa: F811 - the fixture
    srv = make_server('[portal]\ncontact_email = "hola@resguardo.example.mx"\n'
                      'operator_name = "Servicios Resguardo, S.A. de C.V."\n').start()
    outbox = srv.data / "outbox"
    page = browser.new_page(locale="es-MX", viewport={"width": width, "height": height})
    page.set_default_timeout(30_000)
    w = Walk(page, axe, tmp_path, width)

    # The landing page says what it is, who runs it and how to write to them.
    page.goto(srv.url + "/")
    for part in ("Una unidad en el Explorador", "CFDI resguardados por años",
                 "Dónde viven sus datos", "Seguridad", "hola@resguardo.example.mx"):
        expect(page.locator("main")).to_contain_text(part)
    expect(page.locator("main img[src$='explorer.svg']")).to_be_visible()
    assert page.request.get(srv.url + "/favicon.ico").status == 200
    w.check("inicio")

    page.locator("main").get_by_role("link", name="Crear cuenta gratis").click()
    w.check("registro")
    page.fill("#username", "Despacho-Lopez")
    page.fill("#email", "contabilidad@lopez.example.mx")
    page.fill("#password", "una-clave-larga-1")
    page.get_by_role("button", name="Crear cuenta").click()
    expect(page.locator("h1")).to_contain_text("Revise su correo")
    _, body = last_mail(outbox, "Confirme su correo")
    page.goto(re.search(r"https?://\S+/cuenta/confirmar/\S+", body).group(0))
    page.click("#confirmar")
    expect(page.locator("#activar-gratis")).to_be_visible()
    w.check("escritorio")

    # The free space; F5 on its page repeats nothing.
    page.click("#activar-gratis")
    expect(page.locator("#unidad")).to_have_text(f"{srv.url}/dav/despacho-lopez/")
    page.reload()
    expect(page.locator("#unidad")).to_have_text(f"{srv.url}/dav/despacho-lopez/")
    expect(page.locator(".flash.error")).to_have_count(0)

    # Upgrade to 4G: the breakdown follows the selection and names the space.
    page.goto(srv.url + "/planes")
    page.select_option("#tier", "4G")
    page.select_option("#period", "annual")
    expect(page.locator("table.breakdown")).to_contain_text("$769.08")
    page.select_option("#period", "monthly")
    expect(page.locator("table.breakdown")).to_contain_text("$75.40")
    expect(page.locator("table.breakdown")).to_contain_text("IVA 16 %")
    expect(page.locator("#espacio-resultante")).to_contain_text("despacho-lopez — cambio de plan")
    w.check("planes")
    page.click("#agregar")
    expect(page.locator("#total")).to_contain_text("$75.40")
    w.check("carrito")
    page.click("#pagar")
    expect(page.locator("#clausula-1")).to_contain_text("Objeto.")
    w.check("pago")
    page.check("#accept")
    page.click("#continuar-pago")
    pay(page, w, "sandbox")
    expect(page.locator("#estado")).to_have_text("Pago recibido")
    w.check("pedido")

    # Change to 10G the same day: the whole unused month of 4G is credited.
    today = date.today()
    credit = plans.proration_credit(Settings(), "4G", "monthly", plans.add_months(today, 1),
                                    today)
    q = plans.quote(Settings(), "10G", "monthly", credit)
    page.goto(srv.url + "/planes")
    page.select_option("#tier", "10G")
    row = page.locator("table.breakdown tr.credit")
    expect(row).to_contain_text(f"Crédito: {credit.days} días no usados del plan 4G")
    expect(row).to_contain_text(formats.mxn(-credit.amount))
    expect(page.locator("table.breakdown [data-total]")).to_have_text(f"{formats.mxn(q.total)} MXN")
    w.check("cambio-de-plan")
    page.click("#agregar")
    expect(page.locator("#total")).to_contain_text(formats.mxn(q.total))
    page.click("#pagar")
    page.check("#accept")
    page.click("#continuar-pago")
    pay(page, w)
    expect(page.locator("#estado")).to_have_text("Pago recibido")

    # The receipt: the credit line, es-MX amounts, the time in Mexico City, the Total on screen.
    page.get_by_role("link", name="Ver recibo").click()
    credit_line = f"Crédito: {credit.days} días no usados del plan 4G"
    expect(page.locator("main")).to_contain_text(credit_line)
    paid = page.locator("main").inner_text()
    assert re.search(r"Fecha de pago: \d{1,2} [a-z]{3,4} \d{4}, \d{2}:\d{2} CST", paid), paid
    w.fits(page.locator("#total"))
    expect(page.locator("#total")).to_have_text(formats.mxn(q.total))
    w.check("recibo")

    # The space's page: paid-until in es-MX, the users table readable on the phone.
    page.goto(srv.url + "/espacios/despacho-lopez/")
    expect(page.locator("main")).to_contain_text(
        f"Pagado hasta: {formats.day(plans.add_months(today, 1))}")
    w.fits(page.get_by_role("button", name="Eliminar").first)
    w.check("espacio")
    page.goto(srv.url + "/")  # the dashboard: its spaces, paid-until readable on a phone
    w.fits(page.locator("main table td", has_text=formats.day(plans.add_months(today, 1))))
    w.check("escritorio-con-espacio")
    page.goto(srv.url + "/pedidos")
    w.check("pedidos")
    page.goto(srv.url + "/no-existe")
    expect(page.locator("h1")).to_have_text("No encontramos esta página")
    w.check("error-404")
    assert len(w.checked) == 14


def pay(page, w: Walk, check: str | None = None) -> None:
    """The sandbox's card page: an expired card first (refused beside its field)."""
    page.fill("#number", "4242 4242 4242 4242")
    page.fill("#name", "Ana López")
    page.fill("#expiry", "01/24")
    page.fill("#cvc", "123")
    page.click("#pagar-tarjeta")
    expect(page.locator("#expiry-error")).to_contain_text("venció")
    if check:
        w.check(check)
    page.fill("#expiry", "12/30")
    page.fill("#cvc", "123")
    page.click("#pagar-tarjeta")


@pytest.mark.parametrize("width, height", [(1280, 900), (390, 844)], ids=["desk", "phone"])
def test_the_web_drive_and_the_login_pages_are_accessible_and_fit_a_phone(
        make_server, browser, axe, tmp_path, width, height):  # noqa: F811 - the fixture
    import requests

    srv = make_server().start()
    srv.create_space("acme", "4G")
    srv.add_user("acme", "ana", "secreto-ana-1", role="admin")
    auth = ("ana", "secreto-ana-1")
    assert requests.request("MKCOL", srv.dav("acme", "Clientes"), auth=auth,
                            timeout=30).status_code == 201
    for name in ("balanza enero.xlsx", "borrar.txt"):
        assert requests.put(srv.dav("acme", name), data=b"x" * 600_147, auth=auth,
                            timeout=30).status_code == 201
    assert requests.delete(srv.dav("acme", "borrar.txt"), auth=auth, timeout=30).status_code \
        in (200, 204)
    page = browser.new_page(locale="es-MX", viewport={"width": width, "height": height})
    page.set_default_timeout(30_000)
    w = Walk(page, axe, tmp_path, width)
    for path, name in (("/cuenta/entrar", "entrar"), ("/unidad/entrar", "entrar-unidad"),
                       ("/cuenta/olvide", "olvide"), ("/contrato", "contrato")):
        page.goto(srv.url + path)
        w.check(name)
    page.goto(srv.url + "/unidad/entrar")
    page.fill("#space", "acme")
    page.fill("#username", "ana")
    page.fill("#password", "secreto-ana-1")
    page.click("#entrar-unidad")
    page.wait_for_selector('tr[data-name="balanza enero.xlsx"]')
    expect(page.locator('tr[data-name="balanza enero.xlsx"] td.num')).to_have_text("586.1 KB")
    expect(page.locator("a.folder svg.icon")).to_have_count(1)  # drawn, not an emoji
    w.check("unidad")
    page.goto(srv.url + "/unidad/acme/papelera")
    expect(page.locator("body")).to_contain_text("borrar.txt")
    w.check("papelera")
