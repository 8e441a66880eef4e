"""What an operator watches: /healthz, Prometheus /metrics and JSON logs."""

from __future__ import annotations

import json
import re
import time

import pytest
import requests
from test_cfdi import one_cfdi

SMALL = '[tiers.T100K]\nquota = "100K"\nmax_users = 3\ncfdi_years = 1\n'


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition text (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][\w:]*)(\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = ",".join(sorted(m.group(3).split(","))) if m.group(3) else ""
        if got == want:
            return float(m.group(4))
    return 0.0


def scrape(srv) -> str:
    r = requests.get(srv.url + "/metrics", timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain")
    return r.text


def test_healthz_reports_database_and_storage(server):
    r = requests.get(server.url + "/healthz", timeout=10)
    assert r.status_code == 200
    body = r.json()
    assert body.pop("disk_free_bytes") > 0
    assert body == {"status": "ok", "database": "ok", "storage": "ok", "disk": "ok"}
    assert list((server.data / "spaces").glob(".healthz-*")) == []


def test_healthz_is_503_when_the_storage_is_gone(server):
    spaces = server.data / "spaces"
    spaces.mkdir(exist_ok=True)
    moved = server.data / "spaces-away"
    spaces.rename(moved)
    spaces.write_text("no es una carpeta")  # e.g. the shared folder is not mounted
    try:
        r = requests.get(server.url + "/healthz", timeout=10)
        assert r.status_code == 503
        body = r.json()
        assert body["status"] == "error" and body["database"] == "ok"
        assert body["storage"].startswith("error")
        assert "Traceback" not in r.text
    finally:
        spaces.unlink()
        moved.rename(spaces)
    assert requests.get(server.url + "/healthz", timeout=10).status_code == 200


def test_healthz_is_503_while_the_database_is_unreachable(make_server, pg_database):
    import sqlalchemy as sa
    from conftest import PG_ADMIN_URL

    srv = make_server(db_url=pg_database).start()
    assert requests.get(srv.url + "/healthz", timeout=10).status_code == 200
    name = pg_database.rsplit("/", 1)[1]
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = :n"), {"n": name})
            c.execute(sa.text(f'ALTER DATABASE "{name}" RENAME TO "{name}_away"'))
        r = requests.get(srv.url + "/healthz", timeout=30)
        assert r.status_code == 503
        assert r.json()["database"].startswith("error")
        assert r.json()["storage"] == "ok"
    finally:
        with admin.connect() as c:
            c.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = :n"), {"n": f"{name}_away"})
            c.execute(sa.text(f'ALTER DATABASE "{name}_away" RENAME TO "{name}"'))
        admin.dispose()
    assert requests.get(srv.url + "/healthz", timeout=30).status_code == 200


def test_metrics_count_requests_bytes_refusals_and_failures(make_server):
    srv = make_server(SMALL).start()
    srv.create_space("acme", "T100K")
    srv.add_user("acme", "ana", "secreto-ana-1")
    s = requests.Session()
    s.auth = ("ana", "secreto-ana-1")
    before = scrape(srv)
    body = b"m" * 40_000
    assert s.put(srv.dav("acme", "a.bin"), data=body).status_code == 201
    assert s.get(srv.dav("acme", "a.bin")).content == body
    assert s.put(srv.dav("acme", "b.bin"), data=b"x" * 70_000).status_code == 507
    assert requests.request("PROPFIND", srv.dav("acme", ""), auth=("ana", "mal"),
                            headers={"Depth": "0"}).status_code == 401
    after = scrape(srv)

    def delta(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert delta("resguardo_http_requests_total", method="PUT", status="201") == 1
    assert delta("resguardo_http_requests_total", method="PUT", status="507") == 1
    assert delta("resguardo_http_requests_total", method="GET", status="200") == 1
    assert delta("resguardo_http_received_bytes_total", side="drive") >= len(body)
    assert delta("resguardo_http_sent_bytes_total", side="drive") >= len(body)
    assert delta("resguardo_quota_refusals_total", reason="quota") == 1
    assert delta("resguardo_auth_failures_total", reason="password") == 1
    sid = str(srv.show("acme")["id"])
    assert metric(after, "resguardo_space_used_bytes", space_id=sid) == len(body)
    assert metric(after, "resguardo_space_quota_bytes", space_id=sid) == 100 * 1024
    assert metric(after, "resguardo_spaces", status="active") == 1
    assert metric(after, "resguardo_database_up") == 1
    assert metric(after, "resguardo_http_request_duration_seconds_count", method="PUT") >= 2


@pytest.mark.db
def test_metrics_show_only_the_fullest_spaces(make_server):
    srv = make_server("[metrics]\ntop_spaces = 2\n").start()
    s = requests.Session()
    for i, size in enumerate((10, 30, 20)):
        srv.create_space(f"e{i}", "4G")
        srv.add_user(f"e{i}", "ana", "secreto-ana-1")
        assert s.put(srv.dav(f"e{i}", "f.bin"), data=b"z" * size,
                     auth=("ana", "secreto-ana-1")).status_code == 201
    text = scrape(srv)
    shown = set(re.findall(r'resguardo_space_used_bytes\{space_id="([^"]+)"\}', text))
    assert shown == {str(srv.show(f"e{i}")["id"]) for i in (1, 2)}


def test_metrics_never_name_a_customer_space(make_server):
    """Space names are RFCs and company names (personal data of a persona física),
    and metrics often travel to outside monitoring: the per-space gauges carry
    the space's number, which `resguardo space show` maps back."""
    srv = make_server().start()
    srv.create_space("gode561231gr8", "4G")
    srv.add_user("gode561231gr8", "ana", "secreto-ana-1")
    assert requests.put(srv.dav("gode561231gr8", "f.bin"), data=b"z" * 10,
                        auth=("ana", "secreto-ana-1")).status_code == 201
    text = scrape(srv)
    sid = str(srv.show("gode561231gr8")["id"])
    assert metric(text, "resguardo_space_used_bytes", space_id=sid) == 10
    assert "gode561231gr8" not in text.lower()


@pytest.mark.db
def test_retention_protections_are_counted(make_server, tmp_path):
    xml, _entry = one_cfdi(tmp_path)
    srv = make_server().start()
    srv.create_space("acme", "4G")
    srv.add_user("acme", "ana", "secreto-ana-1")
    s = requests.Session()
    s.auth = ("ana", "secreto-ana-1")
    assert s.put(srv.dav("acme", "factura.xml"), data=xml).status_code == 201
    before = metric(scrape(srv), "resguardo_retention_protections_total")
    assert s.delete(srv.dav("acme", "factura.xml")).status_code == 403
    assert s.put(srv.dav("acme", "factura.xml"), data=b"<otra/>").status_code == 403
    after = scrape(srv)
    assert metric(after, "resguardo_retention_protections_total") - before == 2
    assert metric(after, "resguardo_cfdi_in_custody") == 1


def test_metrics_are_refused_outside_the_allowed_networks(make_server):
    srv = make_server('[metrics]\nallow = "10.0.0.0/8"\n').start()
    r = requests.get(srv.url + "/metrics", timeout=10)
    assert r.status_code == 403 and "resguardo_" not in r.text
    assert requests.get(srv.url + "/healthz", timeout=10).status_code == 200


def test_json_logs_have_one_object_per_line_with_the_request_fields(make_server):
    srv = make_server("[log]\njson = true\n").start()
    srv.create_space("acme", "4G")
    srv.add_user("acme", "ana", "secreto-ana-1")
    assert requests.put(srv.dav("acme", "Pólizas.txt"), data=b"p" * 1234,
                        auth=("ana", "secreto-ana-1")).status_code == 201
    deadline = time.monotonic() + 10
    found = None
    while found is None and time.monotonic() < deadline:
        lines = [ln for ln in srv.log.read_text(encoding="utf-8").splitlines() if ln.strip()]
        records = [json.loads(ln) for ln in lines]  # every line parses
        found = next((r for r in records if r.get("method") == "PUT"), None)
        time.sleep(0.1)
    assert found is not None
    assert found["logger"] == "resguardo.access"
    assert found["space"] == "acme" and found["user"] == "ana"
    assert found["path"] == "/dav/acme/Pólizas.txt"
    assert found["status"] == 201 and found["bytes_in"] == 1234
    assert isinstance(found["duration_ms"], float) and found["duration_ms"] >= 0
    assert {"time", "level", "message"} <= set(found)


def test_bad_metrics_allow_is_a_config_error(make_server):
    srv = make_server('[metrics]\nallow = "mi-oficina"\n')
    p = srv.cli("space", "list", check=False)
    assert p.returncode != 0 and "metrics.allow" in p.stderr


@pytest.mark.parametrize("path", ["/healthz", "/metrics"])
def test_operations_endpoints_answer_in_a_drive_only_process(make_server, path):
    srv = make_server()
    srv.serve_args = ["--only", "drive"]
    srv.start()
    assert requests.get(srv.url + path, timeout=10).status_code == 200
