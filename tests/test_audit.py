"""The audit log: every change to a space recorded with time, user, address,
path and sizes; append-only; kept at least as long as the space's CFDI; the
space admin filters and exports it, the operator sees every space.

Drive and CLI tests run the real server on a free port; portal tests use the
in-process portal (the ``portal`` fixture, tests/portal_helpers.py) on a real database."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
import requests
import sqlalchemy as sa
from portal_helpers import buy, link_in, sign_up
from test_cfdi import one_cfdi

from spaces.access import service
from spaces.cfdi import retention
from spaces.commerce import accounts, space_admin
from spaces.core import audit
from spaces.core.models import AuditRecord

# Its outcome depends on the database: runs on SQLite and on PostgreSQL.
pytestmark = pytest.mark.db

LOCK_BODY = ('<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:">'
             "<D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>"
             "<D:owner>oficina</D:owner></D:lockinfo>")


def log_of(srv, space: str = "acme", *args: str) -> list[dict[str, str]]:
    """The space's records through ``resguardo audit list --json`` (newest first)."""
    return json.loads(srv.cli("audit", "list", "--space", space, "--json", "--limit", "1000",
                              *args).stdout)


def actions(rows: list[dict[str, str]]) -> list[str]:
    return [r["accion"] for r in rows]


def session(user: str, password: str) -> requests.Session:
    s = requests.Session()
    s.auth = (user, password)
    return s


# -- what is recorded ----------------------------------------------------------------

def test_cli_changes_to_members_and_tier_are_recorded_oldest_last(make_server):
    srv = make_server().start()
    srv.create_space("acme", "1G")
    srv.add_user("acme", "ana", "secreto-ana-1", role="admin")
    srv.cli("user", "passwd", "acme", "ana", "--password-stdin", input="otra-clave-ana-2\n")
    srv.cli("space", "tier", "acme", "4G")
    srv.cli("space", "tier", "acme", "4G")  # no change: no record
    srv.add_user("acme", "luis", "secreto-luis-1")
    srv.cli("user", "remove", "acme", "luis")
    rows = log_of(srv)
    assert actions(rows) == ["member_removed", "member_added", "tier_changed",
                             "password_changed", "member_added", "space_created"]
    assert all(r["usuario"].startswith("cli:") and r["via"] == "cli" for r in rows)
    assert all(r["espacio"] == "acme" for r in rows)
    by = {r["accion"]: r for r in rows}
    assert by["tier_changed"]["detalle"] == "1G -> 4G"
    assert by["member_removed"]["detalle"] == "luis (editor)"
    assert by["space_created"]["detalle"] == "plan 1G"
    # Times are UTC and now.
    at = datetime.strptime(rows[0]["fecha_utc"], "%Y-%m-%dT%H:%M:%SZ")
    assert abs(at - datetime.now(UTC).replace(tzinfo=None)) < timedelta(minutes=2)
    # The filters of the CLI.
    assert actions(log_of(srv, "acme", "--action", "member_added")) == ["member_added"] * 2
    assert log_of(srv, "acme", "--to", "2020-01-01") == []


def test_a_stamped_cfdi_is_recorded_as_protected_with_user_address_path_and_size(
        make_server, tmp_path):
    data, entry = one_cfdi(tmp_path)
    srv = make_server().start()
    srv.create_space("acme", "4G")
    srv.add_user("acme", "ana", "secreto-ana-1")
    s = session("ana", "secreto-ana-1")
    assert s.request("MKCOL", srv.dav("acme", "Facturas/")).status_code == 201
    assert s.put(srv.dav("acme", "Facturas/f1.xml"), data=data).status_code == 201
    assert s.put(srv.dav("acme", "Facturas/copia.xml"), data=data).status_code == 201  # dup
    protected = log_of(srv, "acme", "--action", "cfdi_protected")
    assert len(protected) == 2  # every stamped copy is protected; the copy says so
    r = next(x for x in protected if x["ruta"] == "/Facturas/f1.xml")
    copy = next(x for x in protected if x["ruta"] == "/Facturas/copia.xml")
    assert "copia de /Facturas/f1.xml" in copy["detalle"]
    assert (r["usuario"], r["direccion"], r["via"]) == ("ana", "127.0.0.1", "dav")
    assert (r["ruta"], r["bytes"]) == ("/Facturas/f1.xml", str(len(data)))
    assert entry["doc"]["uuid"].upper() in r["detalle"].upper()
    # Reindexing what is already known records nothing new.
    srv.cli("cfdi", "reindex", "acme")
    assert len(log_of(srv, "acme", "--action", "cfdi_protected")) == 2


def test_holds_and_the_release_by_the_sweep_are_recorded(make_server, tmp_path):
    data, entry = one_cfdi(tmp_path)
    srv = make_server().start()
    srv.create_space("acme", "4G")
    srv.add_user("acme", "ana", "secreto-ana-1")
    s = session("ana", "secreto-ana-1")
    s.put(srv.dav("acme", "f.xml"), data=data)
    srv.cli("retention", "hold", "acme", "/", "--reason", "revisión SAT 2026")
    srv.cli("retention", "lift", "acme", "/")
    srv.cli("retention", "lift", "acme", "/")  # nothing left to lift: no record
    # Past the 5 years of protection, before the records' own 5 years + margin end.
    future = (datetime.now(UTC) + timedelta(days=5 * 366 + 30)).date().isoformat()
    assert "released" in srv.cli("retention", "sweep", "--now", future).stdout
    rows = log_of(srv)
    assert actions(rows)[:3] == ["cfdi_released", "hold_lifted", "hold_placed"]
    released, lifted, placed = rows[:3]
    assert placed["ruta"] == "/" and placed["detalle"] == "revisión SAT 2026"
    assert placed["usuario"].startswith("cli:") and lifted["usuario"].startswith("cli:")
    assert (released["usuario"], released["ruta"], released["bytes"]) == (
        "system", "/f.xml", str(len(data)))
    assert entry["doc"]["uuid"].upper() in released["detalle"].upper()


def test_an_admin_breaking_another_members_lock_is_recorded_as_lock_stolen(make_server):
    srv = make_server().start()
    srv.create_space("acme", "4G")
    srv.add_user("acme", "ana", "secreto-ana-1")
    srv.add_user("acme", "beto", "secreto-beto-1")
    srv.add_user("acme", "carla", "secreto-carla-1", role="admin")
    ana, beto = session("ana", "secreto-ana-1"), session("beto", "secreto-beto-1")
    carla = session("carla", "secreto-carla-1")
    url = srv.dav("acme", "Póliza 2026.docx")
    assert ana.put(url, data=b"borrador").status_code == 201
    r = ana.request("LOCK", url, data=LOCK_BODY.encode(),
                    headers={"Timeout": "Second-3600", "Content-Type": "application/xml"})
    assert r.status_code == 200, r.text
    token = r.headers["Lock-Token"]
    # A colleague who is not an admin cannot remove it, nor write over it.
    assert beto.request("UNLOCK", url, headers={"Lock-Token": token}).status_code == 403
    assert beto.put(url, data=b"otro").status_code == 423
    assert "lock_stolen" not in actions(log_of(srv))
    # The space admin can: the lock goes and the record says who, from where, whose.
    assert carla.request("UNLOCK", url, headers={"Lock-Token": token}).status_code == 204
    assert beto.put(url, data=b"otro").status_code in (200, 204)
    rows = log_of(srv, "acme", "--action", "lock_stolen")
    assert len(rows) == 1
    r0 = rows[0]
    assert (r0["usuario"], r0["direccion"], r0["via"]) == ("carla", "127.0.0.1", "dav")
    assert r0["ruta"] == "/Póliza 2026.docx" and "ana" in r0["detalle"]
    # The holder unlocking her own lock is no theft.
    r = ana.request("LOCK", url, data=LOCK_BODY.encode(),
                    headers={"Timeout": "Second-3600", "Content-Type": "application/xml"})
    assert ana.request("UNLOCK", url,
                       headers={"Lock-Token": r.headers["Lock-Token"]}).status_code == 204
    assert len(log_of(srv, "acme", "--action", "lock_stolen")) == 1


# -- append-only, kept long enough ------------------------------------------------------------

def _engine(srv) -> sa.Engine:
    return sa.create_engine(srv.db_url)


def _subcommands(*words: str) -> set[str]:
    """The subcommands of ``resguardo WORDS...``, read from the CLI's own parser."""
    import argparse

    from resguardo.cli import _parser

    parser = _parser()
    for word in (*words, None):
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        if word is None:
            return set(sub.choices)
        parser = sub.choices[word]
    raise AssertionError("unreachable")


def test_records_cannot_be_altered_through_any_interface(make_server, tmp_path):
    from flask import Flask

    from portal import create_app
    from resguardo.api.routes import routes
    from spaces.core.db import open_database
    from spaces.core.settings_file import load_settings

    srv = make_server().start()
    srv.create_space("acme", "4G")
    before = log_of(srv)
    assert len(before) == 1
    # The CLI's audit commands are the two that read; both leave the log as it was.
    assert _subcommands("audit") == {"list", "export"}
    assert srv.cli("audit", "export", str(tmp_path / "a.csv")).returncode == 0
    assert log_of(srv) == before
    # The operator API has no route to the log at all.
    settings = load_settings(str(srv.config))
    assert not [r.template for r in routes(settings) if "audit" in r.template
                or "bitacora" in r.template]
    # The portal's log pages only answer reads.
    db = open_database(settings)
    try:
        app: Flask = create_app(settings, db)
        rules = [r for r in app.url_map.iter_rules() if r.endpoint.startswith("audit.")]
        assert rules and all(set(r.methods or ()) <= {"GET", "HEAD", "OPTIONS"} for r in rules)
    finally:
        db.dispose()
    # Not even SQL can rewrite history: a trigger refuses any UPDATE.
    engine = _engine(srv)
    try:
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as c:
            c.execute(sa.update(AuditRecord.__table__).values(user="alguien"))
    finally:
        engine.dispose()
    assert log_of(srv) == before


def test_records_cannot_be_deleted_through_sql_only_expired_ones_by_the_sweep(make_server):
    """A trigger refuses DELETE (and TRUNCATE on PostgreSQL) of any record younger
    than 5 years + 90 days or of a space under a legal hold, whoever issues it;
    the sweep still removes the expired ones, and a sweep run with a clock in
    the future cannot make young records look expired."""
    srv = make_server().start()
    srv.create_space("acme", "4G")
    srv.create_space("legal", "4G")
    srv.cli("retention", "hold", "legal", "/")
    now = datetime.now(UTC).replace(tzinfo=None)
    t = AuditRecord.__table__
    engine = _engine(srv)
    try:
        with engine.begin() as c:
            ids = {n: c.scalar(sa.text("SELECT id FROM spaces WHERE name = :n"), {"n": n})
                   for n in ("acme", "legal")}
            for name, detail, age in (("acme", "viejo", 6 * 366), ("legal", "viejo-retenido",
                                                                    6 * 366),
                                      ("acme", "casi", 5 * 365)):
                c.execute(sa.insert(t).values(
                    at=now - timedelta(days=age), space_id=ids[name], space_name=name,
                    action="upload", user="ana", path="/x.txt", size=1, detail=detail))
        before = log_of(srv, "acme") + log_of(srv, "legal")
        attempts = [sa.delete(t), sa.delete(t).where(t.c.detail == "casi"),
                    sa.delete(t).where(t.c.detail == "viejo-retenido"),
                    sa.delete(t).where(t.c.space_name == "acme"),
                    sa.text("DELETE FROM audit_log WHERE 1 = 1")]
        if engine.dialect.name == "postgresql":
            attempts.append(sa.text("TRUNCATE audit_log"))
        else:  # REPLACE deletes what it collides with, without DELETE triggers
            attempts += [sa.text(f"{verb} INTO audit_log (id, at, space_id, space_name, action) "
                                 "SELECT id, '2000-01-01 00:00:00', space_id, space_name, "
                                 "action FROM audit_log")
                         for verb in ("REPLACE", "INSERT OR REPLACE")]
        for stmt in attempts:
            with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as c:
                c.execute(stmt)
        assert log_of(srv, "acme") + log_of(srv, "legal") == before
        # A sweep with a clock far in the future deletes nothing young (and works).
        srv.cli("retention", "sweep", "--now", "2045-01-01")
        assert {r["detalle"] for r in log_of(srv, "acme")} >= {"casi"}
        # The sweep deletes what expired, the trigger lets it.
        assert "viejo" not in {r["detalle"] for r in log_of(srv, "acme")}
        assert "viejo-retenido" in {r["detalle"] for r in log_of(srv, "legal")}
        with engine.begin() as c:  # and so may anyone, past the period and without a hold
            c.execute(sa.insert(t).values(
                at=now - timedelta(days=7 * 366), space_id=ids["acme"], space_name="acme",
                action="upload", user="ana", path="/y.txt", size=1, detail="muy-viejo"))
        with engine.begin() as c:
            assert c.execute(sa.delete(t).where(t.c.detail == "muy-viejo")).rowcount == 1
    finally:
        engine.dispose()


def test_expiry_keeps_records_for_the_longest_cfdi_period_and_under_a_hold(make_server):
    srv = make_server().start()
    srv.create_space("acme", "1G")  # the free tier keeps CFDI 1 year; records stay 5 + margin
    srv.create_space("legal", "4G")
    now = datetime.now(UTC).replace(tzinfo=None)
    t = AuditRecord.__table__
    engine = _engine(srv)
    try:
        with engine.begin() as c:
            ids = {name: c.scalar(sa.text("SELECT id FROM spaces WHERE name = :n"), {"n": name})
                   for name in ("acme", "legal")}
            rows = [("acme", "viejo", now - timedelta(days=6 * 366)),
                    ("acme", "cuatro-años", now - timedelta(days=4 * 366)),
                    ("acme", "cinco-años-y-un-mes", now - timedelta(days=5 * 365 + 31)),
                    ("legal", "viejo-con-retencion", now - timedelta(days=6 * 366)),
                    ("borrado", "espacio-que-ya-no-existe", now - timedelta(days=2 * 366))]
            for name, detail, at in rows:
                c.execute(sa.insert(t).values(
                    at=at, space_id=ids.get(name, 999_999), space_name=name,
                    action="upload", user="ana", path="/x.txt", size=1, detail=detail))
        srv.cli("retention", "hold", "legal", "/")
        srv.cli("retention", "sweep")
        with engine.connect() as c:
            left = set(c.scalars(sa.select(t.c.detail).where(t.c.detail.is_not(None))))
    finally:
        engine.dispose()
    assert "viejo" not in left
    assert {"cuatro-años", "cinco-años-y-un-mes", "viejo-con-retencion",
            "espacio-que-ya-no-existe"} <= left
    # The records of a space that no longer exists can still be listed by its name.
    assert [r["detalle"] for r in log_of(srv, "borrado")] == ["espacio-que-ya-no-existe"]
    # The same rule, stated by the domain: 5 years (the longest plan) plus the margin.
    from spaces.core.settings import Settings

    cut = audit.cutoff(Settings(), datetime(2031, 6, 1))
    assert cut == datetime(2026, 6, 1) - audit.KEEP_MARGIN


def test_an_audit_failure_after_a_file_operation_is_logged_never_raised(tmp_path, caplog):
    from spaces.core.db import Database, make_engine, migrate

    url = f"sqlite:///{tmp_path / 'a.db'}"
    migrate(url)
    db = Database(make_engine(url))
    with db.engine.begin() as c:
        c.execute(sa.text("DROP TABLE audit_log"))
    assert audit.record(db, 1, audit.Action.UPLOAD, actor=audit.Actor("ana", "10.0.0.7"),
                        path="/a.txt", size=5) is False
    assert "audit write failed" in caplog.text and "/a.txt" in caplog.text
    # Inside the caller's transaction it fails closed: the error reaches the caller.
    with pytest.raises(sa.exc.OperationalError), db.session() as s:
        audit.record(s, 1, audit.Action.MEMBER_ADDED, actor=None)
    db.dispose()


# -- the portal ------------------------------------------------------------------------------

def _member_login(p, space: str, user: str, email: str, password: str):
    path = link_in(p.smtp.last("Su acceso", email), "/acceso/")
    b = p.browser()
    b.post(path, {"password": password, "confirm": password}, form_page=path)
    b.post("/cuenta/entrar-unidad", {"space": space, "username": user, "password": password},
           form_page="/cuenta/entrar-unidad")
    return b


def _csv_rows(resp) -> list[dict[str, str]]:
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    text = resp.get_data(as_text=True).lstrip("\ufeff")
    return list(csv.DictReader(io.StringIO(text)))


def test_space_admin_sees_filters_and_exports_only_their_space(portal):
    b = sign_up(portal)
    buy(portal, b, "4G")
    other = sign_up(portal, "otro", "otro@x.mx")
    buy(portal, other, "4G")
    b.post("/espacios/despacho/usuarios", {"username": "luis", "email": "luis@x.mx",
                                           "role": "editor"}, form_page="/espacios/despacho/")
    luis = [m for m in space_admin.member_rows(portal.db, "despacho") if m.username == "luis"][0]
    p = f"m{luis.id}-"
    b.post(f"/espacios/despacho/usuarios/{luis.id}", {p + "username": "luis", p + "role":
                                                       "reader", p + "action": "role"},
           form_page="/espacios/despacho/")
    retention.place_hold(portal.db, "despacho", "/Facturas/2026", "auditor")

    page = b.get("/espacios/despacho/bitacora")
    assert page.status_code == 200
    assert "Bitácora de" in b.text and "Usuario agregado" in b.text and "Rol cambiado" in b.text
    assert 'id="ir-bitacora"' in b.get("/espacios/despacho/").get_data(as_text=True)

    rows = _csv_rows(b.c.get("/espacios/despacho/bitacora?formato=csv"))
    assert {r["espacio"] for r in rows} == {"despacho"}
    assert [r["accion"] for r in rows] == ["space_created", "member_added", "member_added",
                                           "role_changed", "hold_placed"]
    added = rows[2]
    assert (added["usuario"], added["direccion"], added["via"], added["detalle"]) == (
        "account:despacho", "127.0.0.1", "portal", "luis (editor)")
    assert rows[3]["detalle"] == "luis: editor -> reader"
    assert rows[4]["ruta"] == "/Facturas/2026" and rows[4]["descripcion"] == \
        "Retención legal puesta"

    def exported(query: str) -> list[str]:
        return [r["accion"] for r in _csv_rows(
            b.c.get(f"/espacios/despacho/bitacora?formato=csv&{query}"))]

    assert exported("accion=role_changed") == ["role_changed"]
    assert exported("ruta=facturas") == ["hold_placed"]
    assert exported("usuario=auditor") == ["hold_placed"]
    today = datetime.now(UTC).date()
    assert len(exported(f"desde={today}&hasta={today}")) == 5
    assert exported(f"hasta={today - timedelta(days=1)}") == []
    assert exported(f"desde={today + timedelta(days=1)}") == []
    # The page shows the same filter.
    b.get("/espacios/despacho/bitacora?accion=role_changed")
    assert b.text.count('data-action="') == 1 and 'data-action="role_changed"' in b.text
    # Someone else's log is not there for this admin (404, like a missing space).
    assert b.get("/espacios/otro/bitacora").status_code == 404
    assert b.get("/operador/bitacora").status_code == 404


def test_a_member_who_is_not_admin_cannot_see_the_log(portal):
    b = sign_up(portal)
    buy(portal, b, "4G")
    b.post("/espacios/despacho/usuarios", {"username": "luis", "email": "luis@x.mx",
                                           "role": "editor"}, form_page="/espacios/despacho/")
    luis = _member_login(portal, "despacho", "luis", "luis@x.mx", "clave-de-luis-1")
    assert luis.get("/espacios/despacho/bitacora").status_code == 404
    assert luis.c.get("/espacios/despacho/bitacora?formato=csv").status_code == 404
    assert portal.browser().get("/espacios/despacho/bitacora").status_code == 404
    # Setting the password by the e-mailed link was recorded, by luis, from his address.
    rows = audit.query(portal.db, audit.Filter(action="password_changed"))
    assert [(e.user, e.address, e.space_name) for e in rows] == [
        ("luis", "127.0.0.1", "despacho")]
    # An admin member (no portal account) does see it.
    b.post("/espacios/despacho/usuarios", {"username": "jefa", "email": "jefa@x.mx",
                                           "role": "admin"}, form_page="/espacios/despacho/")
    jefa = _member_login(portal, "despacho", "jefa", "jefa@x.mx", "clave-de-jefa-1")
    assert jefa.get("/espacios/despacho/bitacora").status_code == 200
    assert "Usuario agregado" in jefa.text


def test_operator_sees_every_space_and_their_actions_are_recorded(portal):
    b = sign_up(portal)
    buy(portal, b, "4G")
    other = sign_up(portal, "otro", "otro@x.mx")
    buy(portal, other, "4G")
    accounts.create_operator(portal.db, "root", "ops@resguardo.mx", "operador-seguro-1")
    op = portal.browser()
    op.post("/cuenta/entrar", {"login": "root", "password": "operador-seguro-1"},
            form_page="/cuenta/entrar")
    space = service.get_space(portal.db, "despacho")
    pre = f"s{space.id}-"
    op.post("/operador/espacios/despacho", {pre + "action": "suspend", pre + "tier": "4G"},
            form_page="/operador/")
    op.post("/operador/espacios/despacho", {pre + "action": "resume", pre + "tier": "4G"},
            form_page="/operador/")
    op.post("/operador/espacios/despacho", {pre + "action": "tier", pre + "tier": "80G"},
            form_page="/operador/")
    assert op.get("/operador/bitacora").status_code == 200
    assert "despacho" in op.text and "otro" in op.text
    rows = _csv_rows(op.c.get("/operador/bitacora?formato=csv"))
    assert {r["espacio"] for r in rows} == {"despacho", "otro"}
    mine = [r for r in rows if r["usuario"] == "operator:root"]
    assert [(r["espacio"], r["accion"], r["detalle"]) for r in mine] == [
        ("despacho", "suspended", "active -> suspended"),
        ("despacho", "reactivated", "suspended -> active"),
        ("despacho", "tier_changed", "4G -> 80G")]
    only = _csv_rows(op.c.get("/operador/bitacora?formato=csv&espacio=otro"))
    assert only and {r["espacio"] for r in only} == {"otro"}
    # The log has no form: a POST, even with a valid CSRF token, is not allowed.
    for page in ("/operador/bitacora", "/espacios/despacho/bitacora"):
        assert op.post(page, {}, form_page="/operador/", follow=False).status_code == 405
    assert len(_csv_rows(op.c.get("/operador/bitacora?formato=csv"))) == len(rows)


# -- file operations (recorded by spaces.files.storage, trash and versions) ------------------------

def test_file_operations_over_webdav_are_recorded_with_user_address_path_and_size(
        make_server):
    srv = make_server().start()
    srv.create_space("acme", "4G")
    srv.add_user("acme", "ana", "secreto-ana-1")
    s = session("ana", "secreto-ana-1")
    assert s.request("MKCOL", srv.dav("acme", "Clientes/")).status_code == 201
    assert s.put(srv.dav("acme", "Clientes/balanza.txt"), data=b"12345").status_code == 201
    assert s.put(srv.dav("acme", "Clientes/balanza.txt"), data=b"1234567").status_code == 204
    assert s.request("COPY", srv.dav("acme", "Clientes/balanza.txt"),
                     headers={"Destination": srv.dav("acme", "Clientes/copia.txt")}
                     ).status_code == 201
    assert s.request("MOVE", srv.dav("acme", "Clientes/copia.txt"),
                     headers={"Destination": srv.dav("acme", "Clientes/marzo.txt")}
                     ).status_code == 201
    assert s.delete(srv.dav("acme", "Clientes/marzo.txt")).status_code == 204
    rows = [r for r in reversed(log_of(srv)) if r["via"] == "dav"]
    got = [(r["accion"], r["ruta"], r["destino"], r["bytes"]) for r in rows]
    assert got == [
        ("mkdir", "/Clientes", "", ""),
        ("upload", "/Clientes/balanza.txt", "", "5"),
        ("overwrite", "/Clientes/balanza.txt", "", "7"),
        ("copy", "/Clientes/balanza.txt", "/Clientes/copia.txt", "7"),
        ("move", "/Clientes/copia.txt", "/Clientes/marzo.txt", "7"),
        ("delete", "/Clientes/marzo.txt", "", "7"),
    ]
    assert {(r["usuario"], r["direccion"]) for r in rows} == {("ana", "127.0.0.1")}
    # Filters on the same records: by path (in the path or the destination) and by user.
    assert actions(log_of(srv, "acme", "--path", "MARZO")) == ["delete", "move"]
    assert len(log_of(srv, "acme", "--user", "ana")) == 6


def test_restores_from_trash_and_versions_are_recorded_with_the_actor(make_server):
    from spaces.access.files import space_files
    from spaces.core.db import open_database
    from spaces.core.settings_file import load_settings
    from spaces.files import trash, versions

    srv = make_server().start()
    srv.create_space("acme", "4G")
    srv.add_user("acme", "ana", "secreto-ana-1")
    s = session("ana", "secreto-ana-1")
    s.put(srv.dav("acme", "nomina.txt"), data=b"uno")
    s.put(srv.dav("acme", "nomina.txt"), data=b"dos!")
    s.put(srv.dav("acme", "borrame.txt"), data=b"adios")
    s.delete(srv.dav("acme", "borrame.txt"))
    settings = load_settings(srv.config)
    db = open_database(settings, upgrade=False)
    try:
        info = service.get_space(db, "acme")
        files = space_files(settings, db, info.id, info.name,
                           actor=audit.Actor("jefa", "10.1.2.3", "web"))
        item = trash.list_trash(files)[0]
        trash.restore_from_trash(files, item.id)
        version = versions.list_versions(files, "/nomina.txt")[0]
        versions.restore_version(files, version.id)
    finally:
        db.dispose()
    rows = log_of(srv)
    web = [r for r in rows if r["via"] == "web"]
    assert {r["accion"] for r in web} >= {"trash_restore", "version_restore"}
    assert all((r["usuario"], r["direccion"]) == ("jefa", "10.1.2.3") for r in web)
    restored = next(r for r in web if r["accion"] == "trash_restore")
    assert restored["ruta"] == "/borrame.txt" and restored["bytes"] == "5"
    back = next(r for r in web if r["accion"] == "version_restore")
    assert back["ruta"] == "/nomina.txt" and back["bytes"] == "3"


def test_payments_and_the_lifecycle_record_read_only_renewal_and_tier_change(portal):
    from spaces.commerce import lifecycle, notices
    from spaces.core.mail import Mailer

    b = sign_up(portal)
    buy(portal, b, "4G")
    info = service.get_space(portal.db, "despacho")
    assert info.paid_until is not None
    later = info.paid_until + timedelta(days=portal.settings.billing.grace_days + 1)
    report = lifecycle.run(portal.settings, portal.db, Mailer(portal.settings),
                           notices.Links("http://localhost"), today=later)
    assert report.read_only == ["despacho"]
    buy(portal, b, "10G")  # pays: active again, on the bigger plan
    assert service.get_space(portal.db, "despacho").status == "active"
    rows = [e for e in reversed(audit.query(portal.db, audit.Filter(space="despacho")))]
    got = [(e.action, e.user, e.detail) for e in rows]
    assert got[:2] == [("space_created", "account:despacho", "plan 4G"),
                       ("member_added", "account:despacho", "despacho (admin)")]
    assert got[2][:2] == ("read_only", "system") and str(info.paid_until) in got[2][2]
    assert got[3:] == [
        ("reactivated", "account:despacho", "readonly -> active (renovación pagada)"),
        ("tier_changed", "account:despacho", "4G -> 10G (pago)")]


def test_the_migration_and_the_domain_agree_on_the_floor():
    from pathlib import Path

    (migration,) = (Path(audit.__file__).parent / "migrations" / "versions").glob(
        "*_audit_no_delete.py")
    text = migration.read_text()
    assert text.count(f"'{audit.FLOOR_DAYS} days'") == 1
    assert text.count(f"'-{audit.FLOOR_DAYS} days'") == 1
