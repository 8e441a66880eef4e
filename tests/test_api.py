"""The operator REST API (/api/v1/): bearer tokens, spaces, members, usage, CFDI,
JSON errors in Spanish, and answers that match its own OpenAPI document."""

from __future__ import annotations

import re

import pytest
import requests
from jsonschema import Draft202012Validator
from test_cfdi import one_cfdi

SMALL = '[tiers.T100K]\nquota = "100K"\nmax_users = 2\ncfdi_years = 1\n'


@pytest.fixture
def api(make_server):
    srv = make_server(SMALL).start()
    token = srv.cli("admin", "token", "create", "monitor").stdout.strip().splitlines()[-1]
    assert token.startswith("rgapi_")
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {token}"
    return srv, s, f"{srv.url}/api/v1"


def check(schema: dict, value) -> None:
    """``value`` is what ``schema`` (JSON Schema 2020-12, OpenAPI 3.1's dialect) allows."""
    errors = [f"{e.json_path}: {e.message}" for e in Draft202012Validator(
        schema, format_checker=Draft202012Validator.FORMAT_CHECKER).iter_errors(value)]
    assert not errors, errors


def conforms(spec: dict, method: str, template: str, r: requests.Response) -> None:
    op = spec["paths"][template][method.lower()]
    assert str(r.status_code) in op["responses"], (method, template, r.status_code, r.text)
    content = op["responses"][str(r.status_code)].get("content")
    if content:
        assert r.headers["Content-Type"].startswith("application/json")
        check(content["application/json"]["schema"], r.json())
    else:
        assert r.content == b""


def test_requests_without_a_valid_token_get_401_in_json(api):
    srv, s, base = api
    for headers in ({}, {"Authorization": "Bearer rgapi_inventado"},
                    {"Authorization": "Basic YW5hOng="}):
        r = requests.get(f"{base}/spaces", headers=headers, timeout=10)
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert r.json()["error"]["code"] == "unauthorized"
    srv.cli("admin", "token", "revoke", "monitor")
    assert s.get(f"{base}/spaces").status_code == 401
    assert "revocado" in srv.cli("admin", "token", "list").stdout


@pytest.mark.db
def test_operators_manage_spaces_members_and_read_usage_and_cfdi(api, tmp_path):
    srv, s, base = api
    spec = requests.get(f"{base}/openapi.json", timeout=10).json()
    r = s.post(f"{base}/spaces", json={"name": "acme", "tier": "T100K",
                                       "owner_email": "conta@acme.mx"})
    conforms(spec, "POST", "/api/v1/spaces", r)
    assert r.status_code == 201 and r.json()["drive_url"].endswith("/dav/acme/")
    r = s.post(f"{base}/spaces/acme/members", json={"username": "ana",
                                                   "password": "secreto-ana-1",
                                                   "role": "admin"})
    conforms(spec, "POST", "/api/v1/spaces/{space}/members", r)
    assert r.status_code == 201
    dav = requests.Session()
    dav.auth = ("ana", "secreto-ana-1")
    xml, entry = one_cfdi(tmp_path)
    assert dav.put(srv.dav("acme", "factura.xml"), data=xml).status_code == 201

    r = s.get(f"{base}/spaces/acme/usage")
    conforms(spec, "GET", "/api/v1/spaces/{space}/usage", r)
    assert r.json()["used_bytes"] == len(xml) and r.json()["quota_bytes"] == 100 * 1024
    r = s.get(f"{base}/spaces/acme/cfdi", params={"uuid": entry["doc"]["uuid"].lower()})
    conforms(spec, "GET", "/api/v1/spaces/{space}/cfdi", r)
    assert [d["path"] for d in r.json()["items"]] == ["/factura.xml"]
    assert r.json()["items"][0]["protected_until"].endswith("Z")
    r = s.get(f"{base}/spaces")
    conforms(spec, "GET", "/api/v1/spaces", r)
    assert [x["name"] for x in r.json()["items"]] == ["acme"]
    r = s.get(f"{base}/spaces/acme/members")
    conforms(spec, "GET", "/api/v1/spaces/{space}/members", r)
    assert r.json()["items"] == [{"username": "ana", "role": "admin"}]

    # Suspend: the drive refuses its users; reactivate: back in.
    r = s.patch(f"{base}/spaces/acme", json={"status": "suspended"})
    conforms(spec, "PATCH", "/api/v1/spaces/{space}", r)
    assert r.json()["status"] == "suspended"
    assert dav.request("PROPFIND", srv.dav("acme", ""), headers={"Depth": "0"}
                       ).status_code == 401
    assert s.patch(f"{base}/spaces/acme", json={"status": "active", "tier": "4G"}
                   ).json()["quota_bytes"] == 4 * 2**30
    assert dav.request("PROPFIND", srv.dav("acme", ""), headers={"Depth": "0"}
                       ).status_code == 207
    r = s.get(f"{base}/spaces/acme")
    conforms(spec, "GET", "/api/v1/spaces/{space}", r)
    assert r.json()["users"] == 1 and r.json()["tier"] == "4G"

    r = s.delete(f"{base}/spaces/acme/members/ana")
    conforms(spec, "DELETE", "/api/v1/spaces/{space}/members/{username}", r)
    assert r.status_code == 204
    assert dav.request("PROPFIND", srv.dav("acme", ""), headers={"Depth": "0"}
                       ).status_code == 401

    # Every change made through the API is in the space's audit log, naming the token.
    import json

    log = json.loads(srv.cli("audit", "list", "--space", "acme", "--json").stdout)
    by_api = [e for e in log if e["usuario"] == "api:monitor"]
    assert {e["via"] for e in by_api} == {"api"}
    assert {"space_created", "member_added", "suspended", "tier_changed", "member_removed"
            } <= {e["accion"] for e in by_api}


def test_errors_are_json_in_spanish_with_the_documented_status(api):
    srv, s, base = api
    spec = requests.get(f"{base}/openapi.json", timeout=10).json()
    assert s.post(f"{base}/spaces", json={"name": "acme", "tier": "T100K"}).status_code == 201
    cases = [
        ("POST", "/api/v1/spaces", s.post(f"{base}/spaces", json={"name": "acme",
                                                                   "tier": "T100K"}), 409),
        ("POST", "/api/v1/spaces", s.post(f"{base}/spaces", json={"name": "b",
                                                                   "tier": "99G"}), 400),
        ("POST", "/api/v1/spaces", s.post(f"{base}/spaces", data=b"{no es json",
                                          headers={"Content-Type": "application/json"}), 400),
        ("POST", "/api/v1/spaces", s.post(f"{base}/spaces", data=b"name=x"), 415),
        ("POST", "/api/v1/spaces", s.post(f"{base}/spaces", json=["acme"]), 400),
        ("GET", "/api/v1/spaces/{space}", s.get(f"{base}/spaces/nadie"), 404),
        ("PATCH", "/api/v1/spaces/{space}", s.patch(f"{base}/spaces/acme",
                                                    json={"status": "borrado"}), 400),
        ("PATCH", "/api/v1/spaces/{space}", s.patch(f"{base}/spaces/acme", json={}), 400),
        ("PATCH", "/api/v1/spaces/{space}", s.patch(f"{base}/spaces/acme",
                                                    json={"statuss": "suspended"}), 400),
        ("POST", "/api/v1/spaces", s.post(f"{base}/spaces", json={
            "name": "c", "tier": "4G", "owner_email": "x@" + "y" * 300 + ".mx"}), 400),
        ("GET", "/api/v1/spaces", s.get(f"{base}/spaces", params={"limt": "5"}), 400),
        ("GET", "/api/v1/spaces", s.get(f"{base}/spaces", params={"limit": "0"}), 400),
        ("GET", "/api/v1/spaces", s.get(f"{base}/spaces?limit=1&limit=2"), 400),
        ("GET", "/api/v1/spaces/{space}/cfdi", s.get(f"{base}/spaces/acme/cfdi",
                                                     params={"date_from": "2026-02-30"}), 400),
        ("DELETE", "/api/v1/spaces/{space}/members/{username}",
         s.delete(f"{base}/spaces/acme/members/nadie"), 404),
        # "$" is ECMA's: a name with a final newline is no name; a lone surrogate no text.
        ("POST", "/api/v1/spaces", s.post(f"{base}/spaces", json={"name": "beta\n",
                                                                  "tier": "4G"}), 400),
        ("POST", "/api/v1/spaces", s.post(
            f"{base}/spaces",
            data=b'{"name": "beta", "tier": "4G", "owner_email": "a\\ud800@b.mx"}',
            headers={"Content-Type": "application/json"}), 400),
    ]
    for name in ("u1", "u2"):
        s.post(f"{base}/spaces/acme/members", json={"username": name, "password": "x" * 12})
    cases.append(("POST", "/api/v1/spaces/{space}/members",
                  s.post(f"{base}/spaces/acme/members",
                         json={"username": "u3", "password": "x" * 12}), 403))
    for method, template, r, status in cases:
        assert r.status_code == status, (method, template, r.status_code, r.text)
        conforms(spec, method, template, r)
        err = r.json()["error"]
        assert err["code"] and re.search(r"[a-záéíóúñ]", err["message"]), err
        assert "Traceback" not in r.text
    assert s.get(f"{base}/spaces/beta").status_code == 404
    # The first thing wrong, named: a missing field before an unknown one, then the field.
    r = s.post(f"{base}/spaces", json={"nombre": "x"})
    assert r.json()["error"] == {"code": "missing_field", "message": "Falta el campo 'name'."}
    r = s.post(f"{base}/spaces", json={"name": "gamma", "tier": "4G", "color": "rojo"})
    assert r.json()["error"] == {"code": "unknown_field", "message": "Campo desconocido: 'color'."}
    r = s.post(f"{base}/spaces", json={"name": 7, "tier": "4G"})
    assert r.json()["error"]["message"] == "El campo 'name' no es válido: debe ser texto."
    r = s.post(f"{base}/spaces", json={"name": "gamma", "tier": "4G", "owner_email": None})
    assert r.status_code == 201, r.text  # owner_email may be null
    r = s.put(f"{base}/spaces/acme", json={})
    assert r.status_code == 405 and "PATCH" in r.json()["error"]["message"]
    assert r.headers["Allow"] == "GET, PATCH"
    r = s.get(f"{base}/no-existe")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_openapi_document_describes_every_route_the_api_answers(api):
    _srv, s, base = api
    spec = requests.get(f"{base}/openapi.json", timeout=10).json()
    assert spec["openapi"].startswith("3.") and spec["components"]["securitySchemes"]
    from resguardo.api.routes import routes
    from spaces.core.settings import Settings

    for route in routes(Settings()):
        op = spec["paths"][f"/api/v1{route.template}"][route.method.lower()]
        for schema in [route.request, route.schema,
                       *(p["schema"] for p in op.get("parameters", []))]:
            if schema:
                Draft202012Validator.check_schema(schema)  # OpenAPI 3.1's dialect
        assert str(route.ok) in op["responses"] and "401" in op["responses"]
        assert op["operationId"] and op["summary"]
    # The tiers are the configured ones, the ones POST /spaces accepts.
    tiers = spec["paths"]["/api/v1/spaces"]["post"]["requestBody"]["content"][
        "application/json"]["schema"]["properties"]["tier"]["enum"]
    assert "T100K" in tiers and "4G" in tiers
    # Every documented path answers (with its documented 404 for an unknown space).
    for template, ops in spec["paths"].items():
        url = base + template[len("/api/v1"):].replace("{space}", "nadie").replace(
            "{username}", "nadie")
        for method in ops:
            r = s.request(method.upper(), url, json={"name": "x", "tier": "4G",
                                                     "username": "x", "password": "y" * 12})
            conforms(spec, method, template, r)


@pytest.mark.db
def test_lists_are_pages_that_walk_every_space_member_and_cfdi_once(api, tmp_path):
    srv, s, base = api
    spec = requests.get(f"{base}/openapi.json", timeout=10).json()
    names = [f"e{i:02d}" for i in range(7)]
    for n in reversed(names):
        assert s.post(f"{base}/spaces", json={"name": n, "tier": "4G"}).status_code == 201
    seen, offset, pages = [], 0, 0
    while offset is not None:
        r = s.get(f"{base}/spaces", params={"limit": 3, "offset": offset})
        conforms(spec, "GET", "/api/v1/spaces", r)
        page = r.json()
        assert page["total"] == 7 and page["limit"] == 3 and page["offset"] == offset
        seen += [x["name"] for x in page["items"]]
        offset, pages = page["next_offset"], pages + 1
    assert seen == names and pages == 3
    r = s.get(f"{base}/spaces", params={"offset": 50})
    assert r.json()["items"] == [] and r.json()["next_offset"] is None

    for i in range(4):
        assert s.post(f"{base}/spaces/e00/members", json={
            "username": f"u{i}", "password": "x" * 12}).status_code == 201
    r = s.get(f"{base}/spaces/e00/members", params={"limit": 3, "offset": 1})
    conforms(spec, "GET", "/api/v1/spaces/{space}/members", r)
    assert [m["username"] for m in r.json()["items"]] == ["u1", "u2", "u3"]
    assert r.json()["total"] == 4 and r.json()["next_offset"] is None
    assert s.get(f"{base}/spaces/e00").json()["users"] == 4

    dav = requests.Session()
    dav.auth = ("u0", "x" * 12)
    uuids = []
    for i in range(3):
        xml, entry = one_cfdi(tmp_path / str(i))
        uuids.append(entry["doc"]["uuid"])
        assert dav.put(srv.dav("e00", f"f{i}.xml"), data=xml).status_code == 201
    r = s.get(f"{base}/spaces/e00/cfdi", params={"limit": 2})
    conforms(spec, "GET", "/api/v1/spaces/{space}/cfdi", r)
    first = r.json()
    assert first["total"] == 3 and len(first["items"]) == 2 and first["next_offset"] == 2
    r = s.get(f"{base}/spaces/e00/cfdi", params={"limit": 2, "offset": 2})
    paths = [d["path"] for d in first["items"] + r.json()["items"]]
    assert sorted(paths) == ["/f0.xml", "/f1.xml", "/f2.xml"]
    assert s.get(f"{base}/spaces/e00/cfdi", params={"date_from": "2999-01-01"}
                 ).json()["total"] == 0


def test_hostile_paths_queries_and_bodies_get_4xx_never_5xx(api):
    """What schemathesis and probing found: NUL bytes reached PostgreSQL (which
    refuses them) and came back as 503 "database unavailable", an invitation to
    retry forever; an over-long e-mail did the same; a path was percent-decoded
    twice and read as latin-1."""
    srv, s, base = api
    assert s.post(f"{base}/spaces", json={"name": "acme", "tier": "T100K"}).status_code == 201
    for url, status in [(f"{base}/spaces/a%00b", 404), (f"{base}/spaces/acme/cfdi?rfc=%00", 400),
                        (f"{base}/spaces/acme/cfdi?uuid=%ff", 400), (f"{base}/spaces/%ff", 404),
                        (f"{base}/spaces/%C3%B1", 404), (f"{base}/spaces/ac%25me", 404),
                        (f"{base}/spaces/ACME", 404), (f"{base}/spaces/acme?x=%00", 400)]:
        r = s.get(url)
        assert r.status_code == status, (url, r.status_code, r.text)
        assert r.json()["error"]["code"]
    for name in ("x%2Fy", "x%00", "%ff"):
        assert s.delete(f"{base}/spaces/acme/members/{name}").status_code == 404
    for body in [{"name": "a\u0000b", "tier": "T100K"},
                 {"name": "acme2", "tier": "T100K", "owner_email": "a\u0000@b.mx"},
                 {"name": "acme3", "tier": "T100K", "owner_email": "x" * 5000},
                 {"name": "acme4", "tier": "T100K", "extra": 1}]:
        r = s.post(f"{base}/spaces", json=body)
        assert r.status_code == 400, (body, r.text)
    for raw in (b'{"name": "\\ud800", "tier": "T100K"}', b'{"name": "\xff"}'):
        r = s.post(f"{base}/spaces", data=raw, headers={"Content-Type": "application/json"})
        assert r.status_code == 400, r.text
    r = s.post(f"{base}/spaces/acme/members", json={"username": "u1",
                                                   "password": "a\u0000bcdefghijk"})
    assert r.status_code == 400
    r = s.post(f"{base}/spaces", data=b"x" * (65 * 1024),
               headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert s.get(f"{base}/spaces/acme").json()["name"] == "acme"
    assert "Traceback" not in srv.log.read_text(encoding="utf-8")


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert m, "no CSRF token in page"
    return m.group(1)


def test_operators_create_and_revoke_tokens_in_the_portal_shown_once(make_server):
    srv = make_server().start()
    srv.cli("admin", "create", "root", "--email", "ops@resguardo.mx", "--password-stdin",
            input="operador-seguro-1\n")
    web = requests.Session()
    assert web.get(f"{srv.url}/operador/tokens").status_code == 404  # not logged in
    page = web.get(f"{srv.url}/cuenta/entrar").text
    r = web.post(f"{srv.url}/cuenta/entrar", data={
        "login": "root", "password": "operador-seguro-1", "csrf_token": _csrf(page)})
    assert r.status_code == 200
    assert "/operador/tokens" in web.get(f"{srv.url}/operador/").text

    page = web.get(f"{srv.url}/operador/tokens").text
    assert "Todavía no hay tokens" in page
    assert web.post(f"{srv.url}/operador/tokens", data={"name": "sin-csrf"}).status_code == 400
    r = web.post(f"{srv.url}/operador/tokens", data={"name": "altas",
                                                     "csrf_token": _csrf(page)})
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    token = re.search(r'<code id="token">(rgapi_[\w-]+)</code>', r.text).group(1)
    assert "no se vuelve a mostrar" in r.text
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token}"
    assert api.get(f"{srv.url}/api/v1/spaces").status_code == 200

    # Shown once: the list names it, never again its value; the CLI sees it too.
    page = web.get(f"{srv.url}/operador/tokens").text
    assert "altas" in page and token not in page and "vigente" in page
    assert "altas\tvigente" in srv.cli("admin", "token", "list").stdout
    r = web.post(f"{srv.url}/operador/tokens", data={"name": "altas",
                                                     "csrf_token": _csrf(page)})
    assert r.status_code == 400 and "Ya existe un token" in r.text

    r = web.post(f"{srv.url}/operador/tokens/revocar", data={"name": "altas",
                                                             "csrf_token": _csrf(page)})
    assert r.status_code == 200 and "revocado" in r.text
    assert api.get(f"{srv.url}/api/v1/spaces").status_code == 401
    assert "revocado" in srv.cli("admin", "token", "list").stdout

    # Tokens made with the CLI are listed too; the page speaks English on request.
    srv.cli("admin", "token", "create", "cli-token")
    web.get(f"{srv.url}/idioma/en?next=/operador/tokens")
    page = web.get(f"{srv.url}/operador/tokens").text
    assert "API tokens" in page and "cli-token" in page


@pytest.mark.db
def test_guessing_tokens_pauses_the_address_at_the_api_and_every_other_door(make_server):
    """Tokens are too long to guess, but a client that keeps trying is paused
    like a password guesser: by its address, on every door at once."""
    srv = make_server("[auth]\nmax_failures = 2\nmax_block_seconds = 60\n" + SMALL).start()
    srv.create_space("acme", "T100K")
    srv.add_user("acme", "ana", "secreto-ana-1")
    token = srv.cli("admin", "token", "create", "ops").stdout.strip().splitlines()[-1]
    base = f"{srv.url}/api/v1"
    spec = requests.get(f"{base}/openapi.json", timeout=10).json()
    for i in range(8):  # an address allows 4 x max_failures
        r = requests.get(f"{base}/spaces", headers={"Authorization": f"Bearer rgapi_{i}"},
                         timeout=10)
        assert r.status_code == 401
    r = requests.get(f"{base}/spaces", headers={"Authorization": f"Bearer {token}"},
                     timeout=10)
    assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_attempts"
    assert int(r.headers["Retry-After"]) > 0
    conforms(spec, "GET", "/api/v1/spaces", r)
    assert requests.request("PROPFIND", srv.dav("acme", ""), auth=("ana", "secreto-ana-1"),
                            headers={"Depth": "0"}, timeout=10).status_code == 401
