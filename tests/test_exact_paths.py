"""Paths are compared exactly, and names that Windows (the main client) cannot
tell apart never sit side by side.

Linux names are case-sensitive; SQLite's ``LIKE`` is not. A rename of
``/CASEA/`` must never carry along what the database knows about ``/caseA/``
(CFDI index, legal holds, versions, properties, locks), on SQLite and on
PostgreSQL (run this file with ``RESGUARDO_TEST_DATABASE_URL`` for the latter).
Such twins can only exist from before the name rule (or be placed in storage
by hand), so the tests place them on disk directly."""

from __future__ import annotations

import json
import unicodedata
from urllib.parse import quote

import pytest
import requests
from cfdi_docs import stamped_bytes

pytestmark = pytest.mark.db  # the point is how each database compares paths

PROP_BODY = ('<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:" '
             'xmlns:Z="urn:resguardo-test"><D:set><D:prop><Z:nota>{v}</Z:nota></D:prop>'
             '</D:set></D:propertyupdate>')
PROP_QUERY = ('<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:" '
              'xmlns:Z="urn:resguardo-test"><D:prop><Z:nota/></D:prop></D:propfind>')
LOCK_BODY = ('<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:">'
             '<D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>'
             '<D:owner>ana</D:owner></D:lockinfo>')


def setup(make_server):
    srv = make_server().start()
    srv.create_space("acme", "4G")
    srv.add_user("acme", "ana", "secreto-ana-1", role="admin")
    s = requests.Session()
    s.auth = ("ana", "secreto-ana-1")
    return srv, s


def cfdi_paths(srv) -> dict[str, dict]:
    rows = json.loads(srv.cli("cfdi", "list", "acme", "--all", "--json").stdout)
    return {r["path"]: r for r in rows}


def versions_of(srv, path: str) -> list[dict]:
    return json.loads(srv.cli("versions", "list", "acme", path, "--json").stdout)


def test_moving_a_folder_that_differs_only_in_case_leaves_the_others_cfdi_holds_versions_and_properties(  # noqa: E501
        make_server):
    srv, s = setup(make_server)
    xml, meta = stamped_bytes(1)
    assert s.request("MKCOL", srv.dav("acme", "caseA/")).status_code == 201
    assert s.put(srv.dav("acme", "caseA/f.xml"), data=xml).status_code == 201
    assert s.put(srv.dav("acme", "caseA/v.txt"), data=b"uno").status_code == 201
    assert s.put(srv.dav("acme", "caseA/v.txt"), data=b"dos").status_code == 204
    assert s.request("PROPPATCH", srv.dav("acme", "caseA/v.txt"),
                     data=PROP_BODY.format(v="de caseA")).status_code == 207
    srv.cli("retention", "hold", "acme", "/caseA", "--reason", "auditoría")
    # A twin from before the name rule, differing only in case.
    twin = srv.files_root("acme") / "CASEA"
    twin.mkdir()
    (twin / "otro.txt").write_bytes(b"x")

    r = s.request("MOVE", srv.dav("acme", "CASEA/"),
                  headers={"Destination": srv.dav("acme", "zzmoved/")})
    assert r.status_code == 201, r.text

    index = cfdi_paths(srv)
    assert "/caseA/f.xml" in index and not any(p.startswith("/zzmoved") for p in index)
    assert [v["path"] for v in versions_of(srv, "/caseA/v.txt")] == ["/caseA/v.txt"]
    assert versions_of(srv, "/zzmoved/v.txt") == []
    r = s.request("PROPFIND", srv.dav("acme", "caseA/v.txt"), data=PROP_QUERY,
                  headers={"Depth": "0"})
    assert "de caseA" in r.text
    # The hold stayed on /caseA: even long after the period, the sweep keeps it.
    srv.cli("retention", "sweep", "--now", "2045-01-01")
    r = s.delete(srv.dav("acme", "caseA/f.xml"))
    assert r.status_code == 403 and meta["uuid"] in r.text, r.text
    assert (srv.files_root("acme") / "caseA" / "f.xml").read_bytes() == xml


def test_a_lock_below_one_folder_does_not_lock_its_case_twin(make_server):
    srv, s = setup(make_server)
    assert s.request("MKCOL", srv.dav("acme", "caseA/")).status_code == 201
    assert s.put(srv.dav("acme", "caseA/x.txt"), data=b"x").status_code == 201
    r = s.request("LOCK", srv.dav("acme", "caseA/x.txt"), data=LOCK_BODY,
                  headers={"Timeout": "Second-600"})
    assert r.status_code == 200
    twin = srv.files_root("acme") / "CASEA"
    twin.mkdir()
    (twin / "y.txt").write_bytes(b"y")
    assert s.delete(srv.dav("acme", "CASEA/")).status_code == 204
    assert (srv.files_root("acme") / "caseA" / "x.txt").exists()
    # and the real lock still holds
    assert s.put(srv.dav("acme", "caseA/x.txt"), data=b"nuevo").status_code == 423


def test_a_legal_hold_written_in_another_unicode_spelling_covers_the_document(make_server):
    srv, s = setup(make_server)
    xml, _ = stamped_bytes(2)
    assert s.request("MKCOL", srv.dav("acme", quote("Año") + "/")).status_code == 201
    assert s.put(srv.dav("acme", quote("Año") + "/f.xml"), data=xml).status_code == 201
    # macOS terminals type NFD; the drive stores NFC.
    srv.cli("retention", "hold", "acme", unicodedata.normalize("NFD", "/Año/"))
    srv.cli("retention", "sweep", "--now", "2045-01-01")
    assert s.delete(srv.dav("acme", quote("Año") + "/f.xml")).status_code == 403
    assert "levantadas: 1" in srv.cli("retention", "lift", "acme", "/Año").stdout


def test_a_legal_hold_typed_in_another_case_covers_the_document_and_one_on_nothing_is_refused(
        make_server):
    """An operator types the path of a court order as Windows shows it to
    them, whatever its case: the hold must land on the folder the space has
    (it landed on a path that did not exist, covered nothing, and the CLI said
    "Retención legal" all the same; the document was deletable). A hold on a
    path that does not exist at all is refused: it would protect nothing."""
    srv, s = setup(make_server)
    one, _ = stamped_bytes(3)
    two, _ = stamped_bytes(4)
    assert s.request("MKCOL", srv.dav("acme", "Legal/")).status_code == 201
    assert s.put(srv.dav("acme", "Legal/contrato.xml"), data=one).status_code == 201
    assert s.put(srv.dav("acme", "Legal/anexo.xml"), data=two).status_code == 201
    out = srv.cli("retention", "hold", "acme", "/legal/CONTRATO.XML").stdout
    assert "/Legal/contrato.xml" in out, out
    srv.cli("retention", "sweep", "--now", "2045-01-01")  # periods over: only holds keep
    assert s.delete(srv.dav("acme", "Legal/contrato.xml")).status_code == 403
    assert s.delete(srv.dav("acme", "Legal/anexo.xml")).status_code == 204
    assert s.put(srv.dav("acme", "Legal/anexo.xml"), data=two).status_code == 201
    out = srv.cli("retention", "hold", "acme", "/LEGAL").stdout
    assert "/Legal" in out and "/LEGAL" not in out, out
    srv.cli("retention", "sweep", "--now", "2045-01-01")
    assert s.delete(srv.dav("acme", "Legal/anexo.xml")).status_code == 403
    p = srv.cli("retention", "hold", "acme", "/no-existe/acta.xml", check=False)
    assert p.returncode == 1 and "No existe" in p.stderr and "Traceback" not in p.stderr, p
    assert s.get(srv.dav("acme", "Legal/contrato.xml")).content == one


def test_a_lock_holds_against_every_spelling_of_the_path(make_server):
    """One file, many spellings: the space's name in any case, the name in NFC
    or NFD. A lock taken through one spelling holds against writes through
    every other (the drive compares one canonical path)."""
    srv, s = setup(make_server)
    srv.add_user("acme", "beto", "secreto-beto-1", role="editor")
    other = requests.Session()
    other.auth = ("beto", "secreto-beto-1")
    nfc, nfd = quote("Año.txt"), quote(unicodedata.normalize("NFD", "Año.txt"))
    assert s.put(srv.dav("acme", nfc), data=b"original").status_code == 201
    r = s.request("LOCK", srv.dav("acme", nfd), data=LOCK_BODY,
                  headers={"Timeout": "Second-600"})
    assert r.status_code == 200
    base = srv.url + "/dav/"
    for url in (base + "ACME/" + nfc, base + "acme/" + nfd, base + "Acme/" + nfd):
        assert other.put(url, data=b"encima").status_code == 423, url
        assert other.delete(url).status_code == 423, url
        assert other.request("MOVE", url, headers={
            "Destination": srv.dav("acme", "otro.txt")}).status_code == 423, url
    assert s.get(srv.dav("acme", nfc)).content == b"original"
