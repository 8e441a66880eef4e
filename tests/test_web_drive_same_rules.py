"""The web drive and the WebDAV drive hold the same rules, through the same domain
functions: the same quota refusal, the same role refusal, the same CFDI protection, the
same confinement to one space, read-only and suspended spaces, revocations that end old
web sessions at once, and one brute-force pause for every door."""

from __future__ import annotations

import io
import os
import zipfile
from urllib.parse import quote

import pytest
import requests
from conftest import SHARED
from web_drive_helpers import CSRF_RE, KIB, WebDrive, _db, setup, usage

MAKE_CFDI = SHARED / "tools" / "make_cfdi.py"


SMALL = """
[tiers.T100K]
quota = "100K"
max_users = 5
cfdi_years = 1
"""


@pytest.mark.db
def test_quota_refusal_is_the_same_on_the_web_and_on_webdav(make_server):
    srv, dav, web = setup(make_server, "T100K", SMALL)
    assert web.upload("/", "a.bin", b"a" * 60 * KIB).status_code == 201
    before = usage(srv)
    big = b"b" * 60 * KIB
    r_web = web.upload("/", "b.bin", big)
    r_dav = dav.put(srv.dav("acme", "c.bin"), data=big)
    assert r_web.status_code == 507 and r_dav.status_code == 507
    body = r_web.json()
    assert body["error"] == "Sin espacio"
    # The same Spanish sentence from the same domain refusal.
    assert body["message"].strip() == r_dav.text.strip()
    assert "Espacio insuficiente" in body["message"]
    # Nothing stored, nothing counted, no temporary file left.
    assert usage(srv) == before
    assert sorted(p.name for p in srv.files_root("acme").iterdir()) == ["a.bin"]
    assert not list((srv.data / "spaces" / "acme" / "tmp").iterdir())
    # Filled to the byte: one more byte is refused on both, by the same rule.
    assert web.upload("/", "c.bin", b"c" * 40 * KIB).status_code == 201
    assert usage(srv)[0] == 100 * KIB
    assert web.upload("/", "d.bin", b"d").status_code == 507
    assert dav.put(srv.dav("acme", "d.bin"), data=b"d").status_code == 507
    # With the space full it can still read, move and delete.
    assert web.action("renombrar", ruta="/c.bin", nombre="c2.bin").status_code == 200
    assert web.action("borrar", ruta="/c2.bin").status_code == 200
    assert sorted(p.name for p in srv.files_root("acme").iterdir()) == ["a.bin"]


def test_reader_is_refused_every_write_on_both_drives_with_the_same_reason(make_server):
    srv, dav, web = setup(make_server)
    web.upload("/", "balance.xlsx", b"datos")
    web.action("carpeta", nombre="Archivo")
    srv.add_user("acme", "rita", "secreto-rita-1", role="reader")
    reader = WebDrive(srv, "acme", "rita", "secreto-rita-1")
    rdav = requests.Session()
    rdav.auth = ("rita", "secreto-rita-1")
    assert "sólo puede ver y descargar" in reader.page
    assert 'id="zona-subida"' not in reader.page
    assert reader.download("/balance.xlsx").content == b"datos"

    r = reader.upload("/", "nuevo.txt", b"hola")
    d = rdav.put(srv.dav("acme", "nuevo.txt"), data=b"hola")
    assert r.status_code == 403 and d.status_code == 403
    assert r.json()["message"].strip() == d.text.strip()
    assert "solo de lectura" in d.text and "rita" in d.text
    for action, form in (("carpeta", {"nombre": "X"}),
                         ("renombrar", {"ruta": "/balance.xlsx", "nombre": "b.xlsx"}),
                         ("mover", {"ruta": "/balance.xlsx", "destino": "/Archivo"}),
                         ("borrar", {"ruta": "/balance.xlsx"})):
        r = reader.action(action, **form)
        assert r.status_code == 403 and "solo de lectura" in r.text, (action, r.status_code)
    assert rdav.delete(srv.dav("acme", "balance.xlsx")).status_code == 403
    assert sorted(p.name for p in srv.files_root("acme").iterdir()) == ["Archivo",
                                                                        "balance.xlsx"]


@pytest.mark.db
def test_a_changed_role_or_a_removed_user_applies_at_once(make_server):
    srv, dav, web = setup(make_server)
    assert web.upload("/", "a.txt", b"a").status_code == 201
    from spaces.access import service

    db = _db(srv)
    service.set_role(db, "acme", "ana", "reader")
    db.dispose()
    assert web.upload("/", "b.txt", b"b").status_code == 403
    srv.cli("user", "remove", "acme", "ana")
    r = web.upload("/", "c.txt", b"c")
    assert r.status_code == 401
    r = web.browse("/")
    assert "/unidad/entrar" in r.url
    assert not (srv.files_root("acme") / "c.txt").exists()


def _cfdi(tmp_path):
    import json
    import subprocess
    import sys

    if not MAKE_CFDI.exists():
        pytest.skip(f"{MAKE_CFDI} is not here (it ships beside the repository, in ../shared)")
    out = tmp_path / "good"
    subprocess.run([sys.executable, str(MAKE_CFDI), "--out", str(out), "--seed", "7",
                    "--count", "3", "--types", "ingreso"], check=True, capture_output=True,
                   timeout=300)
    files = json.loads((out / "manifest.json").read_text())["files"]
    entry = next(f for f in files if f["expect"] == "index")
    return (out / entry["file"]).read_bytes()


@pytest.mark.db
def test_a_protected_cfdi_is_refused_on_the_web_as_on_webdav(make_server, tmp_path):
    xml = _cfdi(tmp_path)
    srv, dav, web = setup(make_server)
    web.action("carpeta", nombre="xml")
    assert web.upload("/xml", "f.xml", xml).status_code == 201  # indexed like a PUT
    index = srv.cli("cfdi", "list", "acme", "--all", "--json").stdout
    assert "/xml/f.xml" in index

    r_web = web.action("borrar", carpeta="/xml", ruta="/xml/f.xml")
    r_dav = dav.delete(srv.dav("acme", "xml/f.xml"))
    assert r_web.status_code == 403 and r_dav.status_code == 403
    assert "resguardado hasta" in r_dav.text and "resguardado hasta" in r_web.text
    r_web = web.upload("/xml", "f.xml", b"<otro/>")
    r_dav = dav.put(srv.dav("acme", "xml/f.xml"), data=b"<otro/>")
    assert r_web.status_code == 403 and r_dav.status_code == 403
    assert r_web.json()["message"].strip() == r_dav.text.strip()
    assert (srv.files_root("acme") / "xml" / "f.xml").read_bytes() == xml
    # Deleting its folder keeps it (and says so); renaming within the space is allowed.
    r = web.action("borrar", ruta="/xml")
    assert r.status_code == 200 and "CFDI protegidos" in r.text
    assert (srv.files_root("acme") / "xml" / "f.xml").read_bytes() == xml
    assert web.action("renombrar", carpeta="/xml", ruta="/xml/f.xml",
                      nombre="g.xml").status_code == 200
    assert "/xml/g.xml" in srv.cli("cfdi", "list", "acme", "--all", "--json").stdout


def test_paths_that_leave_the_space_are_refused(make_server, tmp_path):
    srv, dav, web = setup(make_server)
    secret = tmp_path / "secreto.txt"
    secret.write_text("no")
    os.symlink(tmp_path, srv.files_root("acme") / "fuera")
    for path in ("/../../etc", "/a/../../x", "/fuera/secreto.txt", "/fuera"):
        r = web.download(path)
        assert r.status_code in (400, 403, 404), (path, r.status_code)
        assert "no" != r.text
    r = web.browse("/fuera")
    assert "secreto.txt" not in r.text
    for name in ("../x.txt", "a/b.txt", "..", "x\\y.txt"):
        r = web.upload("/", name, b"x")
        assert r.status_code == 400, (name, r.status_code)
    r = web.upload("/../..", "x.txt", b"x")
    assert r.status_code == 400
    r = web.upload("/fuera", "x.txt", b"x")
    assert r.status_code == 403
    # The drive's virtual status file cannot be shadowed by a real one.
    r = web.upload("/", "Espacio disponible - LEEME.txt", b"x")
    d = dav.put(srv.dav("acme", quote("Espacio disponible - LEEME.txt")), data=b"x")
    assert r.status_code == 403 and d.status_code == 403
    assert r.json()["message"].strip() == d.text.strip()
    assert not (tmp_path / "x.txt").exists()
    r = web.action("mover", ruta="/fuera", destino="/")
    assert r.status_code in (400, 403, 409)
    r = web.action("renombrar", ruta="/../secreto.txt", nombre="y.txt")
    assert r.status_code == 400
    assert secret.read_text() == "no"
    r = web.s.get(web.url("descargar"), params={"ruta": "/"}, timeout=30)
    names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
    assert not any("secreto" in n for n in names)  # a ZIP never follows symlinks


def test_one_space_cannot_reach_another(make_server):
    srv, dav, web = setup(make_server)
    srv.create_space("otro", "4G")
    srv.add_user("otro", "oscar", "secreto-oscar-1")
    other = WebDrive(srv, "otro", "oscar", "secreto-oscar-1")
    assert other.upload("/", "privado.txt", b"de otro").status_code == 201
    r = web.s.get(web.url("descargar", "otro"), params={"ruta": "/privado.txt"}, timeout=30)
    assert r.status_code == 200 and "/unidad/entrar" in r.url and b"de otro" not in r.content
    r = web.upload("/", "intruso.txt", b"x", space="otro")
    assert r.status_code == 401
    assert not (srv.files_root("otro") / "intruso.txt").exists()
    # The same credentials do not open another space from the login page either.
    s = requests.Session()
    page = s.get(f"{srv.url}/unidad/entrar", timeout=30).text
    r = s.post(f"{srv.url}/unidad/entrar", data={
        "csrf_token": CSRF_RE.search(page).group(1), "space": "otro", "username": "ana",
        "password": "secreto-ana-1"}, timeout=30)
    assert "incorrectos" in r.text and "/unidad/entrar" in r.url


def test_upload_without_the_csrf_header_is_refused_and_stores_nothing(make_server):
    srv, dav, web = setup(make_server)
    r = web.upload("/", "x.txt", b"hola", csrf=False)
    assert r.status_code == 400
    r = web.s.post(web.url("carpeta"), data={"carpeta": "/", "nombre": "X"}, timeout=30)
    assert r.status_code == 400
    assert not list(srv.files_root("acme").iterdir())


# -- trash and versions ------------------------------------------------------------------

def test_a_read_only_space_refuses_writes_on_both_and_a_suspended_one_logs_out(make_server):
    from spaces.access import service

    srv, dav, web = setup(make_server)
    assert web.upload("/", "a.txt", b"a").status_code == 201
    db = _db(srv)
    service.set_status(db, "acme", "readonly")
    r_web = web.upload("/", "b.txt", b"b")
    r_dav = dav.put(srv.dav("acme", "b.txt"), data=b"b")
    assert r_web.status_code == 403 and r_dav.status_code == 403
    assert "solo lectura" in r_web.json()["message"] and "solo lectura" in r_dav.text
    assert web.download("/a.txt").content == b"a"  # reading still works
    service.set_status(db, "acme", "suspended")
    db.dispose()
    r = web.browse("/")
    assert "/unidad/entrar" in r.url
    assert web.upload("/", "c.txt", b"c").status_code == 401


@pytest.mark.db
def test_cli_and_api_revocations_end_old_web_sessions_at_once(make_server):
    """Through the real doors an operator uses: `resguardo user passwd` ends the
    user's web sessions (they once kept working for 12 hours and created
    folders), and removing a user through the API ends its portal session (it
    once still exported the space's CFDI ZIP)."""
    srv, dav, web = setup(make_server)
    srv.add_user("acme", "jefa", "secreto-jefa-1", role="admin")
    jefa = requests.Session()
    page = jefa.get(f"{srv.url}/cuenta/entrar-unidad", timeout=30).text
    jefa.post(f"{srv.url}/cuenta/entrar-unidad", data={
        "csrf_token": CSRF_RE.search(page).group(1), "space": "acme", "username": "jefa",
        "password": "secreto-jefa-1"}, timeout=30)
    assert jefa.get(f"{srv.url}/espacios/acme/cfdi?formato=zip", timeout=30).status_code == 200
    csrf = web.csrf()
    srv.cli("user", "passwd", "acme", "ana", "--password-stdin", input="clave-nueva-7\n")
    r = web.s.post(web.url("carpeta"), data={"csrf_token": csrf, "carpeta": "/",
                                             "nombre": "despues"}, timeout=30)
    assert "/unidad/entrar" in r.url or r.status_code == 401
    assert web.upload("/", "despues.txt", b"x").status_code == 401
    assert "/unidad/entrar" in web.browse("/").url
    token = srv.cli("admin", "token", "create", "ops").stdout.strip().splitlines()[-1]
    r = requests.delete(f"{srv.url}/api/v1/spaces/acme/members/jefa", timeout=30,
                        headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 204
    for path in ("/espacios/acme/cfdi?formato=zip", "/espacios/acme/", "/unidad/acme/"):
        r = jefa.get(srv.url + path, timeout=30, allow_redirects=False)
        assert r.status_code in (302, 404), (path, r.status_code)
    assert sorted(p.name for p in srv.files_root("acme").iterdir()) == []
    WebDrive(srv, "acme", "ana", "clave-nueva-7")  # the new password logs in at once


# -- one brute-force pause for every door ------------------------------------------------------

# The first pause lasts a minute: every door is tried within it, however loaded the machine.
PAUSE = """
[auth]
max_failures = 2
failure_window_seconds = 300
block_seconds = 60
max_block_seconds = 60
[portal]
max_login_failures = 2
login_window_seconds = 300
login_block_seconds = 60
max_login_block_seconds = 60
"""


def _member_login(srv, door: str, space: str, user: str, password: str) -> int:
    s = requests.Session()
    page = s.get(f"{srv.url}{door}", timeout=30).text
    r = s.post(f"{srv.url}{door}", data={"csrf_token": CSRF_RE.search(page).group(1),
                                         "space": space, "username": user,
                                         "password": password},
               timeout=30, allow_redirects=False)
    return r.status_code


def _dav(srv, user: str, password: str) -> int:
    return requests.request("PROPFIND", srv.dav("acme", ""), auth=(user, password),
                            headers={"Depth": "0"}, timeout=30).status_code


@pytest.mark.db
def test_a_pause_earned_at_one_door_holds_at_every_door_and_spelling(make_server):
    srv = make_server(PAUSE).start()
    srv.create_space("acme", "4G")
    srv.add_user("acme", "ana", "secreto-ana-1", role="admin")
    srv.add_user("acme", "beto", "secreto-beto-1", role="admin")
    # bad passwords through the drive, spelt three ways: one user
    assert [_dav(srv, u, "mala-clave-1") for u in ("ANA", " ana", "dominio\\Ana")] == [401] * 3
    assert _dav(srv, "ana", "secreto-ana-1") == 401
    for door in ("/unidad/entrar", "/cuenta/entrar-unidad"):
        for space, user in (("acme", "ana"), (" ACME ", "Ana "), ("acme", "acme\\ana")):
            assert _member_login(srv, door, space, user, "secreto-ana-1") == 429, (door, user)
    assert _dav(srv, "beto", "secreto-beto-1") == 207  # another user is not paused
    # and the other way round: bad passwords on the web pause the drive
    for door in ("/unidad/entrar", "/cuenta/entrar-unidad"):
        assert _member_login(srv, door, "acme", " BETO", "mala-clave-1") == 200
    assert _dav(srv, "beto", "secreto-beto-1") == 401
    assert _member_login(srv, "/unidad/entrar", "acme", "beto", "secreto-beto-1") == 429


@pytest.mark.db
def test_the_pause_holds_across_separate_drive_and_portal_processes(make_server):
    """The drive and the portal as separate processes (or nodes) on one database:
    failures counted by either pause both."""
    drive = make_server(PAUSE)
    drive.create_space("acme", "4G")
    drive.add_user("acme", "ana", "secreto-ana-1", role="admin")
    drive.serve_args = ["--only", "drive"]
    portal = make_server(PAUSE, share_with=drive)
    from portal_helpers import free_port

    portal.serve_args = ["--only", "portal", "--port", str(free_port())]
    drive.start()
    portal.start()
    assert [_dav(drive, "ana", "mala-clave-1") for _ in range(3)] == [401] * 3
    assert _member_login(portal, "/unidad/entrar", "acme", "ana", "secreto-ana-1") == 429
