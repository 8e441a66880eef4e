"""The CFDI page of the portal: search the index built by the live drive,
totals per month, duplicates, protection dates and exports."""

from __future__ import annotations

import csv
import io
import zipfile
from collections import Counter
from decimal import Decimal

import pytest
import requests
from portal_helpers import Browser
from test_cfdi import corpus, put_tree

from spaces.core.db import open_database
from spaces.core.settings_file import load_settings


def _setup(make_server, tmp_path):
    root, files = corpus(tmp_path, "--count", "20", "--with-acuse")
    srv = make_server().start()
    srv.create_space("acme", "4G")
    srv.add_user("acme", "ana", "secreto-ana-1", role="admin")
    srv.create_space("otro", "4G")
    srv.add_user("otro", "beto", "secreto-beto-1", role="admin")
    s = requests.Session()
    s.auth = ("ana", "secreto-ana-1")
    put_tree(srv, s, root, files)
    from portal import create_app

    settings = load_settings(srv.config)
    db = open_database(settings)
    return srv, files, create_app(settings, db), db


def _login(app, space, user, password):
    b = Browser(app)
    b.post("/cuenta/entrar-unidad", {"space": space, "username": user, "password": password},
           form_page="/cuenta/entrar-unidad")
    return b


@pytest.mark.db
def test_cfdi_page_searches_by_rfc_and_uuid_and_exports_csv_and_zip(make_server, tmp_path):
    srv, files, app, db = _setup(make_server, tmp_path)
    try:
        docs = [f["doc"] for f in files if f["expect"] == "index"]
        b = _login(app, "acme", "ana", "secreto-ana-1")
        r = b.get("/espacios/acme/cfdi")
        assert r.status_code == 200
        assert f"{len(docs)} CFDI en resguardo" in b.text
        rfc = Counter(d["emisor_rfc"] for d in docs).most_common(1)[0][0]
        expected = {d["uuid"] for d in docs if rfc in (d["emisor_rfc"], d["receptor_rfc"])}
        r = b.get(f"/espacios/acme/cfdi?rfc={rfc}&formato=csv")
        assert r.status_code == 200 and r.mimetype == "text/csv"
        rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True).lstrip("\ufeff"))))
        assert {row["uuid"] for row in rows if row["category"] == "index"} == expected
        one = docs[0]
        b.get(f"/espacios/acme/cfdi?uuid={one['uuid'].lower()}")
        assert one["uuid"] in b.text and one["emisor_rfc"] in b.text
        r = b.c.get(f"/espacios/acme/cfdi?rfc={rfc}&formato=zip")
        z = zipfile.ZipFile(io.BytesIO(r.data))
        names = set(z.namelist())
        assert len(names) == len(rows)
        by_uuid = {f["doc"]["uuid"]: f for f in files if f["expect"] == "index"}
        for u in expected:
            f = by_uuid[u]
            assert z.read(f["file"]) == (srv.files_root("acme") / f["file"]).read_bytes()
        # totals per month add up to the index's totals
        b.get("/espacios/acme/cfdi?tipo=I")
        months: dict[str, Decimal] = {}
        for d in docs:
            if d["tipo"] == "I":
                months[d["fecha"][:7]] = months.get(d["fecha"][:7], Decimal("0")) + Decimal(
                    d["total"])
        assert months
        for month, total in months.items():
            assert f"<td>{month}</td>" in b.text and f"{total:,.2f}" in b.text
    finally:
        db.dispose()


@pytest.mark.db
def test_cfdi_page_is_sealed_per_space(make_server, tmp_path):
    srv, files, app, db = _setup(make_server, tmp_path)
    try:
        anon = Browser(app)
        assert anon.get("/espacios/acme/cfdi").status_code == 404
        other = _login(app, "otro", "beto", "secreto-beto-1")
        assert other.get("/espacios/acme/cfdi").status_code == 404
        assert other.get("/espacios/acme/cfdi?formato=zip").status_code == 404
        assert other.get("/espacios/otro/cfdi").status_code == 200
        assert "0 CFDI en resguardo" in other.text
    finally:
        db.dispose()
