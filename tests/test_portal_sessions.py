"""The portal's sessions, through Flask's test client on a real database with a real
SMTP server: ``next`` never leaves the site, authority is re-read on every request, and a
session ends with a logout, a password change, a removal, a suspension or a restore."""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

import pytest
from portal_helpers import PASSWORD, Portal, sign_up

HOST = "localhost"  # the test client's host

#: What an attacker puts in ``next``: each must never send the browser elsewhere.
HOSTILE_NEXT = [
    "//evil.example", "///evil.example", "/%09/evil.example", "/\t/evil.example",
    "/%0d/evil.example", "/%0a/evil.example", "/%0d%0aSet-Cookie:x=1", "/\\evil.example",
    "\\\\evil.example", "/\\/evil.example", "https://evil.example/", "http:evil.example",
    "javascript:alert(1)", " //evil.example", "%2F%2Fevil.example", "/%2F/evil.example",
    "/%E3%80%80/evil.example", "/%00/evil.example", "/%C2%85/evil.example", "%09//evil.example",
    "/.//evil.example", "/%5C%5Cevil.example",
]


def browser_target(location: str) -> str:
    """Where a browser goes for ``location`` (WHATWG URL parsing: tab and newline
    removed anywhere, C0 controls and spaces trimmed, backslash is a slash)."""
    loc = location.replace("\t", "").replace("\n", "").replace("\r", "")
    loc = loc.strip("".join(chr(c) for c in range(0x21))).replace("\\", "/")
    return urlsplit(urljoin(f"http://{HOST}/cuenta/", loc)).netloc


@pytest.mark.parametrize("door", ["/idioma/en", "/idioma/es", "/cuenta/entrar",
                                  "/unidad/entrar"])
def test_next_never_leaves_the_site_and_never_fails(portal, door):
    b = sign_up(portal)
    if door == "/unidad/entrar":
        b.post("/espacio-gratis", {}, form_page="/")
        from spaces.access import service

        service.set_password(portal.db, "despacho", "despacho", "clave-unidad-1")
    for raw in HOSTILE_NEXT:
        path = f"{door}?next={raw}"
        if door == "/cuenta/entrar":
            r = b.post(path, {"login": "despacho", "password": PASSWORD},
                       form_page="/cuenta/entrar", follow=False)
        elif door == "/unidad/entrar":
            r = b.post(path, {"space": "despacho", "username": "despacho",
                              "password": "clave-unidad-1"}, form_page="/unidad/entrar",
                       follow=False)
        else:
            r = b.c.get(path)
        assert r.status_code in (302, 303), (raw, r.status_code)
        location = r.headers["Location"]
        assert browser_target(location) == HOST, (raw, location)
    # a real local target still works
    r = b.c.get("/idioma/es?next=/planes%3Ftier%3D4G")
    assert r.headers["Location"] in ("/planes?tier=4G", f"http://{HOST}/planes?tier=4G")


# -- sessions: authority re-read on every request, revocable ---------------------------------

MEMBER_PW = "clave-de-jefa-1"


def _acme(p: Portal) -> None:
    """Space 'acme' (4G) made like the CLI makes it, with an admin 'jefa', an
    editor 'ed', a file, share links on and one link."""
    from spaces.access import service
    from spaces.files import layout, shares

    info = service.create_space(p.settings, p.db, "acme", "4G")
    service.add_member(p.db, "acme", "jefa", MEMBER_PW, "admin")
    service.add_member(p.db, "acme", "ed", MEMBER_PW, "editor")
    root = layout.space_dir(p.settings, "acme") / "files"
    (root / "doc").mkdir()
    (root / "doc" / "a.txt").write_bytes(b"secreto")
    shares.set_enabled(p.db, info.id, True)


def _member_browser(p: Portal, user: str, door: str):
    from portal_helpers import Browser

    b = Browser(p.app)
    r = b.post(door, {"space": "acme", "username": user, "password": MEMBER_PW},
               form_page=door, follow=False)
    assert r.status_code == 302, b.text
    return b


def _thief(p: Portal, victim) -> object:
    """Another browser holding a copy of ``victim``'s session cookie."""
    from portal_helpers import Browser

    t = Browser(p.app)
    t.c.set_cookie("resguardo_sesion", victim.c.get_cookie("resguardo_sesion").value)
    return t


#: What a space's admin and editor can read through the portal and the web drive.
READS = ["/espacios/acme/", "/espacios/acme/cfdi", "/espacios/acme/cfdi?formato=csv",
         "/espacios/acme/cfdi?formato=zip", "/espacios/acme/bitacora",
         "/espacios/acme/bitacora?formato=csv", "/espacios/acme/resguardo-windows.reg",
         "/unidad/acme/", "/unidad/acme/?ruta=/doc", "/unidad/acme/descargar?ruta=/doc/a.txt",
         "/unidad/acme/descargar?ruta=/doc", "/unidad/acme/papelera",
         "/unidad/acme/versiones?ruta=/doc/a.txt", "/unidad/acme/enlaces"]


def _reads(b, paths=READS) -> dict[str, int]:
    return {path: b.c.get(path).status_code for path in paths}


def _writes(p: Portal, b) -> None:
    """Try every kind of change with the session's own CSRF token."""
    csrf = b.token(b.get("/cuenta/entrar").get_data(as_text=True))
    b.c.post("/unidad/acme/subir?carpeta=/&nombre=intruso.txt", data=b"x",
             headers={"X-CSRFToken": csrf, "Content-Type": "application/octet-stream"})
    for path, form in (("/unidad/acme/carpeta", {"carpeta": "/", "nombre": "intrusa"}),
                       ("/unidad/acme/borrar", {"ruta": "/doc/a.txt"}),
                       ("/unidad/acme/enlaces/crear", {"ruta": "/doc", "dias": "7"}),
                       ("/unidad/acme/enlaces/activar", {"activar": "0"}),
                       ("/espacios/acme/usuarios", {"username": "cuate", "email": "c@x.mx",
                                                    "role": "admin"})):
        b.c.post(path, data={"csrf_token": csrf, **form})


def _untouched(p: Portal) -> None:
    from spaces.access import service
    from spaces.commerce import space_admin
    from spaces.files import layout, shares

    root = layout.space_dir(p.settings, "acme") / "files"
    assert sorted(x.name for x in root.iterdir()) == ["doc"]
    assert (root / "doc" / "a.txt").read_bytes() == b"secreto"
    assert [m.username for m in space_admin.member_rows(p.db, "acme")
            if m.username == "cuate"] == []
    space = service.get_space(p.db, "acme")
    assert shares.list_links(p.db, space.id) == [] and shares.enabled(p.db, space.id)


def _locked_out(p: Portal, b) -> None:
    got = _reads(b)
    assert all(code in (302, 401, 404) for code in got.values()), got
    _writes(p, b)
    _untouched(p)


REVOCATIONS = ["removed", "password changed (resguardo user passwd)",
               "password set through its e-mailed link", "space suspended, then reactivated",
               "beyond the plan's users after a downgrade"]


@pytest.mark.db
@pytest.mark.parametrize("why", REVOCATIONS)
@pytest.mark.parametrize("user,door", [("jefa", "/cuenta/entrar-unidad"),
                                       ("ed", "/unidad/entrar")])
def test_a_revoked_member_old_session_reads_and_changes_nothing(portal, why, user, door):
    from spaces.access import service

    _acme(portal)
    b = _member_browser(portal, user, door)
    before = _reads(b)
    assert before["/unidad/acme/descargar?ruta=/doc/a.txt"] == 200
    if user == "jefa":
        assert before["/espacios/acme/cfdi?formato=zip"] == 200
    stolen = _thief(portal, b)
    if why.startswith("beyond"):
        from sqlalchemy import update

        from spaces.core.models import Space

        # members are admitted oldest first: jefa, ed, then the newest
        service.add_member(portal.db, "acme", "nueva", MEMBER_PW, "admin")
        with portal.db.session() as s:
            s.execute(update(Space).where(Space.name == "acme").values(
                max_users=1 if user == "ed" else 0))
    elif why.startswith("removed"):
        service.remove_member(portal.db, "acme", user)
    elif why.startswith("password changed"):
        service.set_password(portal.db, "acme", user, "otra-clave-99")
    elif why.startswith("password set"):
        from spaces.commerce import accounts, space_admin

        member_id = next(m.id for m in space_admin.member_rows(portal.db, "acme")
                         if m.username == user)
        token = accounts.issue_token(portal.db, portal.settings, "member", member_id=member_id)
        other = portal.browser()
        other.post(f"/acceso/{token}", {"password": "otra-clave-99", "confirm": "otra-clave-99"},
                   form_page=f"/acceso/{token}")
        assert "otra-clave-99" not in other.text
    else:
        service.set_status(portal.db, "acme", "suspended")
        _locked_out(portal, stolen)
        service.set_status(portal.db, "acme", "active")
    _locked_out(portal, stolen)
    _locked_out(portal, b)


@pytest.mark.db
def test_logging_out_ends_every_copy_of_the_session(portal):
    _acme(portal)
    for user, door in (("jefa", "/cuenta/entrar-unidad"), ("ed", "/unidad/entrar")):
        b = _member_browser(portal, user, door)
        stolen = _thief(portal, b)
        assert stolen.c.get("/unidad/acme/").status_code == 200
        b.post("/cuenta/salir", {}, form_page="/unidad/acme/")
        _locked_out(portal, stolen)
        again = _member_browser(portal, user, door)  # a new login works at once
        assert again.c.get("/unidad/acme/").status_code == 200


@pytest.mark.db
def test_an_account_session_dies_with_logout_and_password_changes(portal):
    from portal_helpers import link_in

    b = sign_up(portal)
    b.post("/espacio-gratis", {}, form_page="/")
    assert b.c.get("/espacios/despacho/").status_code == 200

    def copy():
        t = _thief(portal, b)
        assert t.c.get("/cuenta/").status_code == 200
        return t

    def dead(t) -> None:
        r = t.c.get("/cuenta/")
        assert r.status_code == 302 and "/cuenta/entrar" in r.headers["Location"]
        assert t.c.get("/espacios/despacho/").status_code == 404
        assert t.c.get("/espacios/despacho/cfdi?formato=zip").status_code == 404

    def login(password: str = PASSWORD) -> None:
        b.post("/cuenta/entrar", {"login": "despacho", "password": password},
               form_page="/cuenta/entrar")
        assert b.c.get("/cuenta/").status_code == 200

    stolen = copy()
    b.post("/cuenta/salir", {}, form_page="/")
    dead(stolen)
    login()
    stolen = copy()
    b.post("/cuenta/", {"pw-current": PASSWORD, "pw-password": "otra-clave-33",
                        "pw-submit": "1"}, form_page="/cuenta/")
    assert "Contraseña cambiada" in b.text
    dead(stolen)
    assert b.c.get("/cuenta/").status_code == 200  # who changed it stays in
    stolen = copy()
    b2 = portal.browser()
    b2.post("/cuenta/olvide", {"email": "ana@despacho.mx"}, form_page="/cuenta/olvide")
    path = link_in(portal.smtp.last("Restablecer", "ana@despacho.mx"), "/cuenta/restablecer/")
    b2.post(path, {"password": "nueva-clave-22", "confirm": "nueva-clave-22"}, form_page=path)
    dead(stolen)
    dead(b)
    assert b2.c.get("/cuenta/").status_code == 200


@pytest.mark.db
def test_a_suspended_space_keeps_its_documents_even_from_its_owner_account(portal):
    from spaces.access import service

    b = sign_up(portal)
    b.post("/espacio-gratis", {}, form_page="/")
    assert b.c.get("/espacios/despacho/cfdi?formato=zip").status_code == 200
    service.set_status(portal.db, "despacho", "suspended")
    for path in ("/espacios/despacho/cfdi", "/espacios/despacho/cfdi?formato=zip",
                 "/espacios/despacho/cfdi?formato=csv"):
        r = b.c.get(path)
        assert r.status_code == 403 and "suspendido" in r.get_data(as_text=True), path
    assert b.c.get("/espacios/despacho/").status_code == 200  # the owner sees its state
    service.set_status(portal.db, "despacho", "active")
    assert b.c.get("/espacios/despacho/cfdi?formato=zip").status_code == 200


@pytest.mark.db
def test_an_account_is_paused_whether_named_by_username_or_email(portal):
    sign_up(portal)
    b = portal.browser()
    for login in ("despacho", "ana@DESPACHO.MX", " Despacho ", "ana@despacho.mx",
                  "DESPACHO"):  # [portal] max_login_failures = 5
        r = b.post("/cuenta/entrar", {"login": login, "password": "mala-clave-0"},
                   form_page="/cuenta/entrar")
        assert r.status_code == 200
    for login in ("ana@despacho.mx", "despacho"):
        r = b.post("/cuenta/entrar", {"login": login, "password": PASSWORD},
                   form_page="/cuenta/entrar")
        assert r.status_code == 429 and "Demasiados intentos" in b.text


# -- an RFC belongs to one account, proven by its Constancia de Situación Fiscal -------------

@pytest.mark.db
@pytest.mark.parametrize("whole", [True, False])
def test_a_restored_backup_brings_back_no_session(portal, tmp_path, whole):
    """A session ended after a backup was taken must not come back when that backup
    is restored (the archive holds the versions of before): a restore ends every
    portal session of what it brings back."""
    from portal_helpers import Browser, drop, write_config

    from portal import create_app
    from spaces.core.db import open_database
    from spaces.core.settings_file import load_settings
    from spaces.jobs import backup, restore

    _acme(portal)
    b = _member_browser(portal, "jefa", "/cuenta/entrar-unidad")
    stolen = _thief(portal, b)
    archive = tmp_path / "respaldo.tar"
    backup.backup(portal.settings, portal.db, archive, None if whole else ["acme"])
    b.post("/cuenta/salir", {}, form_page="/espacios/acme/")  # ends the copy too
    (tmp_path / "nueva").mkdir()
    cfg, pg = write_config(tmp_path / "nueva")
    settings = load_settings(cfg)
    db = open_database(settings)
    try:
        restore.restore(settings, db, archive)
        restored = Browser(create_app(settings, db))
        restored.c.set_cookie("resguardo_sesion", stolen.c.get_cookie("resguardo_sesion").value)
        for path in ("/espacios/acme/", "/espacios/acme/cfdi?formato=zip", "/unidad/acme/"):
            assert restored.c.get(path).status_code in (302, 404), path
    finally:
        db.dispose()
        drop(pg)
