"""Resguardo de CFDI on the live drive: recognise and index what is uploaded,
protect stamped documents for their period, holds and the release sweep.

The corpora come from ../shared/tools/make_cfdi.py (synthetic, deterministic);
tests that need them are skipped with a reason where it is not available."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from conftest import SHARED

MAKE_CFDI = SHARED / "tools" / "make_cfdi.py"
FIELDS = ("uuid", "version", "tipo", "emisor_rfc", "emisor_nombre", "receptor_rfc",
          "fecha", "fecha_timbrado", "total", "moneda")


def corpus(tmp_path: Path, *args: str) -> tuple[Path, list[dict]]:
    if not MAKE_CFDI.exists():
        pytest.skip(f"{MAKE_CFDI} is not here (it ships beside the repository, in ../shared)")
    out = tmp_path / ("bad" if "--bad" in args else "good")
    subprocess.run([sys.executable, str(MAKE_CFDI), "--out", str(out), "--seed", "7", *args],
                   check=True, capture_output=True, timeout=300)
    return out, json.loads((out / "manifest.json").read_text())["files"]


def one_cfdi(tmp_path: Path) -> tuple[bytes, dict]:
    out, files = corpus(tmp_path, "--count", "3", "--types", "ingreso")
    entry = next(f for f in files if f["expect"] == "index")
    return (out / entry["file"]).read_bytes(), entry


def setup(make_server, tier="4G", config=""):
    srv = make_server(config).start()
    srv.create_space("acme", tier)
    srv.add_user("acme", "ana", "secreto-ana-1", role="admin")
    s = requests.Session()
    s.auth = ("ana", "secreto-ana-1")
    return srv, s


def index_by_path(srv, space="acme"):
    rows = json.loads(srv.cli("cfdi", "list", space, "--all", "--json").stdout)
    return {r["path"]: r for r in rows}


def put_tree(srv, s, root: Path, files: list[dict]):
    made = set()
    for f in files:
        parts = f["file"].split("/")
        for i in range(1, len(parts)):
            folder = "/".join(parts[:i])
            if folder not in made:
                s.request("MKCOL", srv.dav("acme", folder + "/"))
                made.add(folder)
        r = s.put(srv.dav("acme", f["file"]), data=(root / f["file"]).read_bytes())
        assert r.status_code == 201, (f["file"], r.status_code, r.text)


@pytest.mark.db
def test_valid_corpus_uploaded_over_webdav_matches_the_manifest_field_by_field(
        make_server, tmp_path):
    root, files = corpus(tmp_path, "--count", "40", "--with-pdf", "--with-acuse")
    srv, s = setup(make_server)
    put_tree(srv, s, root, files)
    index = index_by_path(srv)
    indexed = 0
    for f in files:
        row = index.get("/" + f["file"])
        if row is None:
            assert f["expect"] == "not-cfdi", f["file"]  # a companion PDF: ordinary file
            continue
        assert row["category"] == f["expect"], (f["file"], row["reason"])
        assert row["sha256"] == f["sha256"] and row["size"] == f["size"]
        if f["expect"] == "index":
            indexed += 1
            for k in FIELDS:
                assert str(row[k]) == str(f["doc"][k]), (f["file"], k)
            if f["doc"].get("pago_monto"):
                assert Decimal(row["monto_pagado"]) == Decimal(f["doc"]["pago_monto"])
            assert row["protected_until"] is not None
        if f["expect"] == "acuse":
            assert row["uuid"] == f["doc"]["uuid"]
            cancelled = [r for r in index.values()
                         if r["uuid"] == row["uuid"] and r["category"] == "index"]
            assert cancelled and all(r["cancelled"] for r in cancelled)
    assert indexed == 41
    status = s.get(srv.dav("acme", "Espacio disponible - LEEME.txt"),  # Windows' alone
                   headers={"User-Agent": "Microsoft-WebDAV-MiniRedir/10.0.19045"}).text
    assert "CFDI en resguardo: 41" in status


@pytest.mark.serial  # measures the server's latency while it digests the corpus
def test_hostile_corpus_gets_expected_categories_and_server_stays_responsive(
        make_server, tmp_path):
    root, files = corpus(tmp_path, "--bad", "--huge-mb", "12", "--zip-bomb-mb", "16")
    srv, s = setup(make_server)
    latencies: list[float] = []
    statuses: list[int] = []
    done = threading.Event()

    def probe():  # asserts nothing itself: the main thread checks what it saw
        p = requests.Session()
        p.auth = ("ana", "secreto-ana-1")
        while not done.is_set():
            t = time.monotonic()
            r = p.request("PROPFIND", srv.dav("acme"), headers={"Depth": "0"})
            latencies.append(time.monotonic() - t)
            statuses.append(r.status_code)
            done.wait(0.05)

    t = threading.Thread(target=probe)
    t.start()
    try:
        put_tree(srv, s, root, files)
    finally:
        done.set()
        t.join(30)
    assert statuses and set(statuses) == {207}, statuses
    assert max(latencies) < 5, max(latencies)
    index = index_by_path(srv)
    for f in files:
        row = index.get("/" + f["file"])
        if row is None:
            assert f["expect"] in ("archive", "not-cfdi"), f["file"]
            continue
        assert row["category"] == f["expect"], (f["file"], row["category"], row["reason"])
        # every upload is kept, indexed or not
        assert s.get(srv.dav("acme", f["file"])).content == (root / f["file"]).read_bytes()
    by_name = {p.rsplit("/", 1)[-1]: r for p, r in index.items()}
    original = by_name["dup_original.xml"]
    assert original["duplicate_of"] is None and original["protected_until"]
    # The lower-case UUID is recognised as the same UUID (its content differs
    # from the original, so it is a conflict too).
    for name, conflict in (("dup_exact_copy.xml", False), ("dup_conflicting_content.xml", True),
                           ("dup_lowercase_uuid.xml", True)):
        dup = by_name[name]
        assert dup["duplicate_of"] is not None and dup["uuid"] == original["uuid"], name
        assert dup["conflict"] is conflict, name
        # Not a second document in the counts, but protected like the first
        # (tests/test_cfdi_protection.py: a fake planted first).
        assert dup["protected_until"] >= original["protected_until"], name
    d = srv.show("acme")
    on_disk = sum(p.stat().st_size for p in srv.files_root("acme").rglob("*") if p.is_file())
    assert d["used_bytes"] == on_disk


@pytest.mark.db
def test_protected_cfdi_refuses_delete_overwrite_proppatch_and_move_out(make_server, tmp_path):
    data, entry = one_cfdi(tmp_path)
    srv, s = setup(make_server)
    srv.create_space("otro", "4G")
    assert s.put(srv.dav("acme", "factura.xml"), data=data).status_code == 201
    url = srv.dav("acme", "factura.xml")
    year = datetime.now().year + 5
    for r in (s.delete(url), s.put(url, data=b"<x/>"),
              s.request("MOVE", url, headers={"Destination": srv.dav("otro", "f.xml")}),
              s.request("COPY", srv.dav("acme", "Espacio disponible - LEEME.txt"),
                        headers={"Destination": url, "Overwrite": "T",
                                 "User-Agent": "Microsoft-WebDAV-MiniRedir/10.0.19045"})):
        assert r.status_code == 403, r.status_code
    r = s.delete(url)
    assert entry["doc"]["uuid"] in r.text and str(year) in r.text and "resguardado" in r.text
    body = ('<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="http://x.mx/">'
            '<D:set><D:prop><Z:nota>cambio</Z:nota></D:prop></D:set></D:propertyupdate>')
    r = s.request("PROPPATCH", url, data=body)
    assert r.status_code == 207 and "403 Forbidden" in r.text and "200 OK" not in r.text
    # Another file moved onto it is refused too (it would replace the CFDI).
    s.put(srv.dav("acme", "otra.txt"), data=b"x")
    r = s.request("MOVE", srv.dav("acme", "otra.txt"),
                  headers={"Destination": url, "Overwrite": "T"})
    assert r.status_code == 403
    assert s.get(url).content == data


@pytest.mark.db
def test_rename_and_move_inside_the_space_are_allowed_and_the_index_follows(
        make_server, tmp_path):
    data, entry = one_cfdi(tmp_path)
    srv, s = setup(make_server)
    s.put(srv.dav("acme", "f.xml"), data=data)
    s.request("MKCOL", srv.dav("acme", "2024/"))
    r = s.request("MOVE", srv.dav("acme", "f.xml"),
                  headers={"Destination": srv.dav("acme", "2024/Factura A-1.xml")})
    assert r.status_code == 201
    r = s.request("MOVE", srv.dav("acme", "2024/"),
                  headers={"Destination": srv.dav("acme", "archivo-2024/")})
    assert r.status_code == 201
    rows = json.loads(srv.cli("cfdi", "list", "acme", "--uuid", entry["doc"]["uuid"].lower(),
                              "--json").stdout)
    assert [r["path"] for r in rows] == ["/archivo-2024/Factura A-1.xml"]
    assert s.delete(srv.dav("acme", "archivo-2024/Factura A-1.xml")).status_code == 403


@pytest.mark.db
def test_folder_with_protected_cfdi_deletes_the_rest_and_names_what_was_kept(
        make_server, tmp_path):
    data, entry = one_cfdi(tmp_path)
    srv, s = setup(make_server)
    s.request("MKCOL", srv.dav("acme", "cierre/"))
    s.request("MKCOL", srv.dav("acme", "cierre/xml/"))
    s.put(srv.dav("acme", "cierre/xml/f.xml"), data=data)
    s.put(srv.dav("acme", "cierre/xml/notas.txt"), data=b"n" * 100)
    s.put(srv.dav("acme", "cierre/balanza.xlsx"), data=b"b" * 300)
    r = s.delete(srv.dav("acme", "cierre/"))
    assert r.status_code == 207
    assert "/dav/acme/cierre/xml/f.xml" in r.text and "403" in r.text
    assert s.get(srv.dav("acme", "cierre/xml/f.xml")).content == data
    assert s.get(srv.dav("acme", "cierre/balanza.xlsx")).status_code == 404
    assert s.get(srv.dav("acme", "cierre/xml/notas.txt")).status_code == 404
    d = srv.show("acme")
    # The rest went to the trash (its copy of the two folders, the two files):
    # out of the plan, which counts the 2 folders and the CFDI that stayed.
    assert (d["used_bytes"], d["used_files"]) == (len(data), 3)
    assert (d["reserve_used_bytes"], d["reserve_used_files"]) == (400, 4)
    assert "sin diferencias" in srv.cli("quota", "recount", "acme").stdout
    srv.cli("trash", "empty", "acme")
    d = srv.show("acme")
    assert (d["used_bytes"], d["used_files"]) == (len(data), 3)  # 2 folders + the CFDI
    assert (d["reserve_used_bytes"], d["reserve_used_files"]) == (0, 0)
    assert "sin diferencias" in srv.cli("quota", "recount", "acme").stdout


@pytest.mark.db
def test_hold_keeps_a_document_past_its_period_and_the_sweep_releases_after_lift(
        make_server, tmp_path):
    data, _ = one_cfdi(tmp_path)
    srv, s = setup(make_server)
    s.request("MKCOL", srv.dav("acme", "a/"))
    s.put(srv.dav("acme", "a/f.xml"), data=data)
    srv.cli("retention", "hold", "acme", "/a", "--reason", "auditoría SAT 2025")
    future = f"{datetime.now().year + 10}-01-01"
    out = srv.cli("retention", "sweep", "--now", future).stdout
    assert "/a/f.xml" not in out  # held
    assert s.delete(srv.dav("acme", "a/f.xml")).status_code == 403
    srv.cli("retention", "lift", "acme", "/a")
    out = srv.cli("retention", "sweep", "--now", future).stdout
    assert "released" in out and "/a/f.xml" in out
    assert "0 acciones" in srv.cli("retention", "sweep", "--now", future).stdout  # idempotent
    assert s.delete(srv.dav("acme", "a/f.xml")).status_code == 204


@pytest.mark.db
def test_sweep_before_the_period_ends_releases_nothing(make_server, tmp_path):
    data, _ = one_cfdi(tmp_path)
    srv, s = setup(make_server)
    s.put(srv.dav("acme", "f.xml"), data=data)
    soon = f"{datetime.now().year + 4}-12-31"
    assert "0 acciones" in srv.cli("retention", "sweep", "--now", soon).stdout
    assert s.delete(srv.dav("acme", "f.xml")).status_code == 403


@pytest.mark.db
def test_upgrade_extends_the_period_and_a_downgrade_never_shortens_it(make_server, tmp_path):
    data, entry = one_cfdi(tmp_path)
    srv, s = setup(make_server, tier="1G")
    s.put(srv.dav("acme", "f.xml"), data=data)

    def until():
        rows = json.loads(srv.cli("cfdi", "list", "acme", "--json").stdout)
        return datetime.fromisoformat(rows[0]["protected_until"])

    one_year = until()
    assert one_year.year == datetime.now().year + 1
    srv.cli("space", "tier", "acme", "4G")
    assert until().year == datetime.now().year + 5
    srv.cli("space", "tier", "acme", "1G")
    assert until().year == datetime.now().year + 5
    sweep_after_one_year = f"{datetime.now().year + 2}-12-31"
    assert "0 acciones" in srv.cli("retention", "sweep", "--now", sweep_after_one_year).stdout


@pytest.mark.db
def test_reindex_rebuilds_the_index_and_keeps_ingest_times(make_server, tmp_path):
    root, files = corpus(tmp_path, "--count", "6")
    srv, s = setup(make_server)
    put_tree(srv, s, root, files)
    before = index_by_path(srv)
    out = srv.cli("cfdi", "reindex", "acme").stdout
    assert "CFDI en resguardo: 7" in out or "7 CFDI en resguardo" in out
    after = index_by_path(srv)
    assert set(after) == set(before)
    for path, row in before.items():
        assert after[path]["ingested_at"] == row["ingested_at"]
        assert after[path]["protected_until"] == row["protected_until"]
        assert after[path]["category"] == row["category"]


def test_an_interrupted_upload_is_never_indexed(
        make_server, tmp_path):
    data, entry = one_cfdi(tmp_path)
    # Streamed to the drive (a body this small would otherwise wait whole in the
    # server's front and, cut, never reach it): the drive's rollback is the subject.
    srv, s = setup(make_server, config="[server]\nbuffered_body = 1024\n")
    import base64
    import socket
    from urllib.parse import urlparse

    u = urlparse(srv.url)
    auth = base64.b64encode(b"ana:secreto-ana-1").decode()
    with socket.create_connection((u.hostname, u.port), timeout=10) as sock:
        sock.sendall((f"PUT /dav/acme/cortado.xml HTTP/1.1\r\nHost: x\r\nAuthorization: Basic "
                      f"{auth}\r\nContent-Length: {len(data)}\r\n\r\n").encode()
                     + data[: len(data) // 2])
    # Not a pause and a hope: wait until the server has dropped the short body.
    srv.wait_for_log(r"incomplete upload dropped: space=acme path=cortado\.xml")
    assert "/cortado.xml" not in index_by_path(srv)
    assert s.get(srv.dav("acme", "cortado.xml")).status_code == 404


@pytest.mark.db
def test_purge_policy_notifies_30_and_7_days_ahead_then_deletes_through_the_delete_path(
        make_server, tmp_path):
    from datetime import timedelta

    data, entry = one_cfdi(tmp_path)
    srv = make_server('[retention]\npolicy = "purge"\n').start()
    srv.cli("space", "create", "acme", "--tier", "1G", "--owner", "conta@acme.mx")
    srv.add_user("acme", "ana", "secreto-ana-1", role="admin")
    s = requests.Session()
    s.auth = ("ana", "secreto-ana-1")
    s.put(srv.dav("acme", "f.xml"), data=data)
    s.put(srv.dav("acme", "otro.txt"), data=b"queda")
    until = datetime.fromisoformat(
        json.loads(srv.cli("cfdi", "list", "acme", "--json").stdout)[0]["protected_until"])
    outbox = srv.data / "outbox"

    def sweep(at):  # one second later: --now has whole seconds, the dates do not
        at = at + timedelta(seconds=1)
        return srv.cli("retention", "sweep", "--now", at.isoformat(timespec="seconds")).stdout

    def mails():
        return sorted(outbox.glob("*.eml")) if outbox.exists() else []

    assert "0 acciones" in sweep(until - timedelta(days=31))
    assert mails() == []
    out = sweep(until - timedelta(days=30))
    assert "notice" in out and "purged" not in out
    assert len(mails()) == 1
    first = mails()[0].read_text()
    assert "conta@acme.mx" in first and entry["doc"]["uuid"] in first
    assert "0 acciones" in sweep(until - timedelta(days=29))  # each notice once
    assert "final-notice" in sweep(until - timedelta(days=7))
    assert len(mails()) == 2
    # Period over, but a purge also needs both notices to be old enough: it is.
    out = sweep(until + timedelta(seconds=1))
    assert "purged" in out and "/f.xml" in out
    assert s.get(srv.dav("acme", "f.xml")).status_code == 404
    assert s.get(srv.dav("acme", "otro.txt")).content == b"queda"
    d = srv.show("acme")
    assert (d["used_bytes"], d["used_files"]) == (5, 1)
    assert json.loads(srv.cli("cfdi", "list", "acme", "--json").stdout) == []
    assert "0 acciones" in sweep(until + timedelta(days=1))


@pytest.mark.db
def test_purge_never_happens_without_notices_even_long_after_the_period(make_server, tmp_path):
    from datetime import timedelta

    data, _ = one_cfdi(tmp_path)
    srv = make_server('[retention]\npolicy = "purge"\n').start()
    srv.cli("space", "create", "acme", "--tier", "1G", "--owner", "conta@acme.mx")
    srv.add_user("acme", "ana", "secreto-ana-1", role="admin")
    s = requests.Session()
    s.auth = ("ana", "secreto-ana-1")
    s.put(srv.dav("acme", "f.xml"), data=data)
    late = datetime.now() + timedelta(days=3 * 365)
    out = srv.cli("retention", "sweep", "--now", late.isoformat(timespec="seconds")).stdout
    assert "notice" in out and "purged" not in out
    assert s.delete(srv.dav("acme", "f.xml")).status_code == 403  # still protected
    srv.cli("retention", "hold", "acme", "/")
    much_later = late + timedelta(days=60)
    out = srv.cli("retention", "sweep", "--now", much_later.isoformat(timespec="seconds")).stdout
    assert "purged" not in out
    assert s.get(srv.dav("acme", "f.xml")).content == data
