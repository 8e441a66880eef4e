"""A customer's spaces in the portal: the free space, the space's administration
(members, their e-mailed passwords) and the operator's view."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
from portal_helpers import ROOT, buy, link_in, sign_up
from sqlalchemy import func, select

from spaces.access import service
from spaces.commerce import accounts, space_admin
from spaces.core.models import Space

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
