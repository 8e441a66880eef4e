"""The web drive in a real browser (Debian's chromium driven by Playwright): a
member logs in, uploads a 20 MB file and watches the progress bar reach 100 %,
then brings a deleted file back from the Papelera and restores an earlier
version. Skipped without chromium unless RESGUARDO_REQUIRE_BROWSER=1."""

from __future__ import annotations

import os
import re

import pytest
import requests
from playwright.sync_api import expect
from test_portal_browser import browser  # noqa: F401 - the fixture

pytestmark = pytest.mark.browser

MIB = 2**20


def _login(page, srv, space: str, user: str, password: str) -> None:
    page.goto(srv.url + "/unidad/entrar")
    page.fill("#space", space)
    page.fill("#username", user)
    page.fill("#password", password)
    page.click("#entrar-unidad")
    page.wait_for_selector("#ubicacion")


def test_member_uploads_with_progress_then_restores_from_trash_and_a_version(
        make_server, browser, tmp_path):  # noqa: F811 - the fixture
    srv = make_server().start()
    srv.create_space("acme", "4G")
    srv.add_user("acme", "ana", "secreto-ana-1", role="admin")
    page = browser.new_page(locale="es-MX", viewport={"width": 390, "height": 844})
    page.set_default_timeout(30_000)
    page.on("dialog", lambda d: d.accept())
    _login(page, srv, "acme", "ana", "secreto-ana-1")
    expect(page.locator("body")).to_contain_text("Esta carpeta está vacía")

    # 1. A 20 MB upload: the progress bar reaches 100 % and the file is listed.
    big = tmp_path / "Estados financieros 2025.bin"
    data = os.urandom(20 * MIB)
    big.write_bytes(data)
    seen: list[int] = []
    page.expose_function("reportProgress", lambda v: seen.append(int(v)))
    page.evaluate("""() => new MutationObserver(() => {
        const p = document.querySelector('#subidas progress');
        if (p) window.reportProgress(p.value);
      }).observe(document.getElementById('subidas'),
                 {subtree: true, childList: true, attributes: true, characterData: true})""")
    page.set_input_files("#archivos", str(big))
    page.wait_for_function("() => { const p = document.querySelector('#subidas progress');"
                           " return p && p.value === 100; }")
    expect(page.locator("#subidas")).to_contain_text("100 %")
    page.wait_for_selector('tr[data-name="Estados financieros 2025.bin"]')  # after the reload
    assert (srv.files_root("acme") / big.name).read_bytes() == data
    assert srv.show("acme")["used_bytes"] == len(data)
    assert seen and max(seen) == 100

    # 2. Delete it from its menu, then bring it back from the Papelera.
    row = page.locator('tr[data-name="Estados financieros 2025.bin"]')
    row.locator("summary").click()
    row.get_by_role("button", name="Borrar").click()
    page.wait_for_selector("#vacia")
    assert not (srv.files_root("acme") / big.name).exists()
    page.click("#ir-papelera")
    expect(page.locator("#nota-papelera")).to_contain_text("No cuenta en su plan")
    page.locator('tr[data-name="Estados financieros 2025.bin"] .restaurar').click()
    expect(page.locator("body")).to_contain_text("Restaurado en /Estados financieros 2025.bin")
    assert (srv.files_root("acme") / big.name).read_bytes() == data

    # 3. A file overwritten from the browser: restore the earlier version.
    auth = ("ana", "secreto-ana-1")
    assert requests.put(srv.dav("acme", "poliza.txt"), data=b"poliza original", auth=auth,
                        timeout=30).status_code == 201
    newer = tmp_path / "poliza.txt"
    newer.write_bytes(b"poliza corregida")
    page.goto(srv.url + "/unidad/acme/")
    page.set_input_files("#archivos", str(newer))
    page.wait_for_function("() => { const p = document.querySelector('#subidas progress');"
                           " return p && p.value === 100; }")
    page.wait_for_selector('tr[data-name="poliza.txt"]')
    assert (srv.files_root("acme") / "poliza.txt").read_bytes() == b"poliza corregida"
    row = page.locator('tr[data-name="poliza.txt"]')
    row.locator("summary").click()
    row.get_by_role("link", name="Versiones").click()
    page.locator(".restaurar-version").first.click()
    expect(page.locator("body")).to_contain_text("Versión restaurada")
    assert (srv.files_root("acme") / "poliza.txt").read_bytes() == b"poliza original"


def test_a_reader_sees_no_upload_zone_and_an_over_quota_file_is_refused_in_spanish(
        make_server, browser, tmp_path):  # noqa: F811 - the fixture
    srv = make_server('[tiers.T1M]\nquota = "1M"\nmax_users = 3\ncfdi_years = 1\n').start()
    srv.create_space("acme", "T1M")
    srv.add_user("acme", "ana", "secreto-ana-1", role="editor")
    srv.add_user("acme", "rita", "secreto-rita-1", role="reader")
    page = browser.new_page(locale="es-MX")
    page.set_default_timeout(30_000)
    _login(page, srv, "acme", "rita", "secreto-rita-1")
    assert page.locator("#zona-subida").count() == 0
    expect(page.locator("#solo-lectura")).to_contain_text("sólo puede ver y descargar")

    page2 = browser.new_page(locale="es-MX")
    page2.set_default_timeout(30_000)
    _login(page2, srv, "acme", "ana", "secreto-ana-1")
    too_big = tmp_path / "grande.bin"
    too_big.write_bytes(b"x" * (2 * MIB))
    page2.set_input_files("#archivos", str(too_big))
    page2.wait_for_selector("#subidas .msg.error")
    expect(page2.locator("#subidas")).to_contain_text("Sin espacio")
    assert not (srv.files_root("acme") / "grande.bin").exists()
    # Without the page's own check (stale numbers), the server's 507 reaches the
    # browser with the drive's Spanish sentence, not a dropped connection.
    page2.goto(srv.url + "/unidad/acme/")
    page2.evaluate("() => document.getElementById('zona-subida')"
                   ".setAttribute('data-available', '')")
    page2.set_input_files("#archivos", str(too_big))
    page2.wait_for_selector("#subidas .msg.error")
    expect(page2.locator("#subidas")).to_contain_text("Sin espacio: Espacio insuficiente en 'acme'")
    assert not (srv.files_root("acme") / "grande.bin").exists()
    assert srv.show("acme")["used_bytes"] == 0


def test_upload_list_and_table_show_sizes_alike_in_es_mx_and_free_room_rounds_down(
        make_server, browser, tmp_path):  # noqa: F811 - the fixture
    srv = make_server().start()
    srv.create_space("acme", "4G")
    srv.add_user("acme", "ana", "secreto-ana-1", role="editor")
    page = browser.new_page(locale="en-US")  # the page's language decides, not the browser's
    page.set_default_timeout(30_000)
    _login(page, srv, "acme", "ana", "secreto-ana-1")
    f = tmp_path / "balanza.xlsx"
    f.write_bytes(os.urandom(600_147))
    page.set_input_files("#archivos", str(f))
    # The browser script's figure, while the upload runs...
    expect(page.locator("#subidas")).to_contain_text("balanza.xlsx (586.1 KB)")
    page.wait_for_selector('tr[data-name="balanza.xlsx"]')  # ...and the server's after the reload
    expect(page.locator('tr[data-name="balanza.xlsx"] td.num')).to_have_text("586.1 KB")
    # 4 GB - 586.1 KB is 3.9994 GB: shown as 3.9 GB free, never as the whole 4 GB.
    expect(page.locator("#uso")).to_contain_text("586.1 KB de 4 GB usados; 3.9 GB libres.")
    when = page.locator('tr[data-name="balanza.xlsx"] td.when').inner_text()
    assert re.fullmatch(r"\d{1,2} [a-z]{3,4} \d{4}, \d{2}:\d{2} CST", when), when
