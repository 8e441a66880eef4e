"""The portal's language switch, its e-mail transport (SMTP or the outbox), dates in
es-MX, and the domain's independence from the web frameworks."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import date

import pytest
from portal_helpers import (
    PASSWORD,
    ROOT,
    Browser,
    buy,
    drop,
    sign_up,
    write_config,
)

from spaces.commerce import accounts
from spaces.core import plans
from spaces.core.db import open_database
from spaces.core.settings import Settings
from spaces.core.settings_file import load_settings

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
