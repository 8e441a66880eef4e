"""Folders of thousands of files and Windows Explorer: Windows' WebDAV client
refuses a listing larger than FileAttributesLimitInBytes (1,000,000 bytes by
default), so the drive keeps its answer to Explorer small, measures it, and names
the folders past that limit in the status file and the portal before a customer
believes their CFDI are lost."""

from __future__ import annotations

import html
import re
import uuid
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests
from portal_helpers import Browser
from test_cfdi import one_cfdi
from windows_helpers import WIN_UA

from spaces.access.statusfile import STATUS_FILE_NAME
from spaces.files import listings

#: What Windows Explorer (WebClient) asks for when it lists a folder.
EXPLORER_PROPFIND = (
    b'<?xml version="1.0" encoding="utf-8" ?><D:propfind xmlns:D="DAV:"><D:prop>'
    b"<D:name/><D:parentname/><D:href/><D:ishidden/><D:isreadonly/><D:getcontenttype/>"
    b"<D:contentclass/><D:getcontentlanguage/><D:creationdate/><D:lastaccessed/>"
    b"<D:getlastmodified/><D:getcontentlength/><D:iscollection/><D:isstructureddocument/>"
    b"<D:defaultdocument/><D:displayname/><D:isroot/><D:resourcetype/></D:prop></D:propfind>")
#: Bytes per entry of that answer for a CFDI-named file, measured (docs/benchmarks.md).
BYTES_PER_CFDI_ENTRY = 800
AUTH = ("ana", "secreto-ana-1")


def _cfdi_names(n: int) -> list[str]:
    return [f"FAC-2026-{i:05d}-{str(uuid.uuid4()).upper()}.xml" for i in range(n)]


def _space(make_server):
    srv = make_server().start()
    srv.create_space("acme", "4G")
    srv.add_user("acme", "ana", "secreto-ana-1", role="admin")
    return srv


def _fill(srv, folder: str, names: list[str]) -> None:
    """Files written straight into the space (a listing reads the folder, nothing else)."""
    d = srv.files_root("acme") / folder
    d.mkdir(parents=True)
    for n in names:
        (d / n).write_bytes(b"<cfdi/>" * 700)


def _explorer_listing(srv, folder: str) -> bytes:
    r = requests.request("PROPFIND", srv.dav("acme", quote(folder) + "/"),
                         data=EXPLORER_PROPFIND, auth=AUTH, timeout=60,
                         headers={"Depth": "1", "User-Agent": WIN_UA,
                                  "Content-Type": 'text/xml; charset="utf-8"'})
    assert r.status_code == 207, r.text[:300]
    return r.content


def test_explorers_listing_of_3000_cfdi_costs_at_most_the_measured_bytes_per_entry(make_server):
    srv = _space(make_server)
    names = _cfdi_names(3000)
    _fill(srv, "Facturas 2026", names)
    body = _explorer_listing(srv, "Facturas 2026")
    assert body.count(b"<D:response>") == 3001  # every file, and the folder itself
    per_entry = len(body) / 3001
    assert per_entry <= BYTES_PER_CFDI_ENTRY, per_entry
    # A file's empty resourcetype is one empty element, and no namespace is declared
    # again inside the answer.
    assert b"<D:resourcetype></D:resourcetype>" not in body
    assert body.count(b'xmlns:D="DAV:"') == 1
    # The estimate the warnings rest on follows the real answer closely, never short.
    estimate = listings.listing_bytes("acme", "/Facturas 2026", [(n, False) for n in names])
    assert len(body) <= estimate <= len(body) * 1.02, (estimate, len(body))


def test_the_estimate_holds_for_accented_names_folders_and_other_types(make_server):
    srv = _space(make_server)
    kinds = [("Año 2024", True), ("Pólizas & cía <1>.xlsx", False), ("b.docx", False),
             ("sin extensión", False), ("recibo.pdf", False), ("100% listo.csv", False)]
    entries = [(f"{i:03d} {name}", is_dir) for i in range(40) for name, is_dir in kinds]
    d = srv.files_root("acme") / "Mixta ñ"
    d.mkdir()
    for name, is_dir in entries:
        (d / name).mkdir() if is_dir else (d / name).write_bytes(b"x" * 1234)
    real = len(_explorer_listing(srv, "Mixta ñ"))
    estimate = listings.listing_bytes("acme", "/Mixta ñ", entries)
    assert real * 0.99 <= estimate <= real * 1.03, (estimate, real)


def test_a_folder_past_windows_limit_is_named_in_the_status_file_with_its_entries(
        make_server):
    srv = _space(make_server)
    _fill(srv, "Facturas 2026/Enero", _cfdi_names(3000))
    _fill(srv, "Facturas 2025", _cfdi_names(1000))  # about 800 kB: Windows lists it
    r = requests.get(srv.dav("acme", quote(STATUS_FILE_NAME)), auth=AUTH,
                     headers={"User-Agent": WIN_UA}, timeout=30)
    assert r.status_code == 200
    text = r.text
    assert "/Facturas 2026/Enero (3000 archivos y carpetas)" in text, text
    assert "Facturas 2025" not in text
    assert "FileAttributesLimitInBytes" in text and "subcarpetas por año o mes" in text


def test_a_space_with_small_folders_gets_no_warning(make_server):
    srv = _space(make_server)
    _fill(srv, "Facturas", _cfdi_names(50))
    text = requests.get(srv.dav("acme", quote(STATUS_FILE_NAME)), auth=AUTH,
                        headers={"User-Agent": WIN_UA}, timeout=30).text
    assert "ATENCIÓN" not in text and "FileAttributesLimitInBytes" not in text


@pytest.mark.db
def test_the_portal_names_the_folder_offers_the_registry_value_and_links_cfdi_to_files(
        make_server, tmp_path):
    from portal import create_app
    from spaces.core.db import open_database
    from spaces.core.settings_file import load_settings

    srv = _space(make_server)
    _fill(srv, "Facturas 2026", _cfdi_names(3000))
    data, _entry = one_cfdi(tmp_path)
    assert requests.put(srv.dav("acme", "Facturas%202026/timbrada.xml"), data=data, auth=AUTH,
                        timeout=30).status_code == 201
    settings = load_settings(srv.config)
    db = open_database(settings)
    try:
        b = Browser(create_app(settings, db))
        b.post("/cuenta/entrar-unidad", {"space": "acme", "username": "ana",
                                         "password": "secreto-ana-1"},
               form_page="/cuenta/entrar-unidad")
        page = b.get("/espacios/acme/").get_data(as_text=True)
        assert 'id="carpetas-grandes"' in page
        assert "<code>/Facturas 2026</code>" in page and "3001 archivos y carpetas" in page
        reg = b.c.get("/espacios/acme/resguardo-windows.reg").get_data().decode("utf-16")
        assert '"FileAttributesLimitInBytes"=dword:ffffffff' in reg
        # The CFDI search links every document to its file, whatever Explorer shows.
        found = b.get("/espacios/acme/cfdi").get_data(as_text=True)
        links = [urlsplit(html.unescape(h)) for h in
                 re.findall(r'<a class="archivo" href="([^"]+)"', found)]
        assert [(u.path, parse_qs(u.query)["ruta"]) for u in links] == [
            ("/unidad/acme/descargar", ["/Facturas 2026/timbrada.xml"])]
    finally:
        db.dispose()
