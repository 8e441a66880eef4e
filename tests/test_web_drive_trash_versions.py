"""The web drive's trash and versions: a deleted file restored from the trash page, a
version listed, downloaded and restored, and an admin freeing space (versions first, then
the oldest trash)."""

from __future__ import annotations

import re

import pytest
from web_drive_helpers import KIB, WebDrive, setup, usage

# -- trash and versions ------------------------------------------------------------------

@pytest.mark.db
def test_deleted_file_is_restored_from_the_trash_page(make_server):
    srv, dav, web = setup(make_server, role="admin")
    web.action("carpeta", nombre="Clientes")
    assert web.upload("/Clientes", "libro.xlsx", b"libro").status_code == 201
    used = usage(srv)
    assert web.action("borrar", carpeta="/Clientes", ruta="/Clientes/libro.xlsx"
                      ).status_code == 200
    assert usage(srv) == (used[0] - 5, used[1] - 1)  # the trash is outside the plan...
    page = web.s.get(web.url("papelera"), timeout=30).text
    assert "libro.xlsx" in page and "No cuenta en su plan" in page  # ...and says so
    item = re.search(r"/papelera/(\d+)/restaurar", page).group(1)
    # A reader sees the trash but cannot restore.
    srv.add_user("acme", "rita", "secreto-rita-1", role="reader")
    reader = WebDrive(srv, "acme", "rita", "secreto-rita-1")
    rpage = reader.s.get(reader.url("papelera"), timeout=30).text
    assert "libro.xlsx" in rpage and "/restaurar" not in rpage
    reader.page = rpage
    assert reader.action(f"papelera/{item}/restaurar").status_code == 403
    r = web.action(f"papelera/{item}/restaurar")
    assert r.status_code == 200 and "Restaurado en /Clientes/libro.xlsx" in r.text
    assert dav.get(srv.dav("acme", "Clientes/libro.xlsx")).content == b"libro"
    # Emptying is for admins and frees the room.
    web.action("borrar", carpeta="/Clientes", ruta="/Clientes/libro.xlsx")
    web.page = web.s.get(web.url("papelera"), timeout=30).text
    r = web.action("papelera/vaciar")
    assert r.status_code == 200 and "Papelera vaciada" in r.text
    assert usage(srv)[0] == 0 and srv.show("acme")["reserve_used_bytes"] == 0


@pytest.mark.db
def test_a_version_is_listed_downloaded_and_restored(make_server):
    srv, dav, web = setup(make_server)
    assert dav.put(srv.dav("acme", "poliza.txt"), data=b"version uno").status_code == 201
    assert web.upload("/", "poliza.txt", b"version dos").status_code == 200
    page = web.s.get(web.url("versiones"), params={"ruta": "/poliza.txt"}, timeout=30).text
    vid = re.search(r"/versiones/(\d+)/descargar", page).group(1)
    r = web.s.get(web.url(f"versiones/{vid}/descargar"), timeout=30)
    assert r.status_code == 200 and r.content == b"version uno"
    assert "versi%C3%B3n" in r.headers["Content-Disposition"]
    web.page = page
    r = web.action(f"versiones/{vid}/restaurar", ruta="/poliza.txt")
    assert r.status_code == 200 and "Versión restaurada" in r.text
    assert dav.get(srv.dav("acme", "poliza.txt")).content == b"version uno"
    # Restoring kept the replaced content as a version: it can be undone.
    page = web.s.get(web.url("versiones"), params={"ruta": "/poliza.txt"}, timeout=30).text
    vid = re.search(r"/versiones/(\d+)/descargar", page).group(1)
    assert web.s.get(web.url(f"versiones/{vid}/descargar"), timeout=30).content == b"version dos"


@pytest.mark.db
def test_an_admin_frees_space_versions_first_then_the_oldest_trash(make_server):
    """The admin frees reserve room from the Papelera page (versions and trash live
    outside the plan): earlier versions go first, then the oldest trash; current
    files are never touched; others can't."""
    srv, dav, web = setup(make_server, tier="T100K", role="admin",
                          config='[tiers.T100K]\nquota = "100K"\nmax_users = 3\ncfdi_years = 1\n')
    srv.add_user("acme", "edi", "secreto-edi-1", role="editor")
    assert dav.put(srv.dav("acme", "libro.xlsx"), data=b"a" * 30 * KIB).status_code == 201
    assert dav.put(srv.dav("acme", "libro.xlsx"), data=b"b" * 30 * KIB).status_code == 204
    assert dav.put(srv.dav("acme", "viejo.pdf"), data=b"v" * 30 * KIB).status_code == 201
    assert dav.delete(srv.dav("acme", "viejo.pdf")).status_code == 204
    # 60 KiB held in the reserve, outside the plan: the plan has 70 KiB free.
    assert dav.put(srv.dav("acme", "nuevo.pdf"), data=b"n" * 30 * KIB).status_code == 201
    assert srv.show("acme")["reserve_used_bytes"] == 60 * KIB
    page = web.s.get(web.url("papelera"), timeout=30).text
    assert "Liberar espacio" in page and "versiones anteriores" in page
    web.page = page
    editor = WebDrive(srv, "acme", "edi", "secreto-edi-1")
    editor.page = editor.s.get(editor.url("papelera"), timeout=30).text
    assert "Liberar espacio" not in editor.page
    assert editor.action("papelera/liberar", cantidad="20K").status_code == 403
    assert web.action("papelera/liberar", cantidad="veinte").status_code == 400
    r = web.action("papelera/liberar", cantidad="20K")
    assert r.status_code == 200 and "Se liberaron" in r.text, r.text
    # The version went first: the trash item is still there, the file untouched.
    assert srv.cli("versions", "list", "acme", "libro.xlsx").stdout.strip() == ""
    assert "viejo.pdf" in srv.cli("trash", "list", "acme").stdout
    assert dav.get(srv.dav("acme", "libro.xlsx")).content == b"b" * 30 * KIB
    assert srv.show("acme")["reserve_used_bytes"] == 30 * KIB
    assert "sin diferencias" in srv.cli("quota", "recount", "acme").stdout
