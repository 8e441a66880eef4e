"""The operator REST API under ``/api/v1/`` (JSON, bearer tokens).

Every answer is JSON; every error is ``{"error": {"code", "message"}}`` with a
Spanish message and the matching status (400, 401, 403, 404, 405, 409, 503),
never a traceback. The OpenAPI document (``/api/v1/openapi.json``) is built
from the same route table that dispatches, so the two cannot drift apart.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from spaces import apitokens, quota, service
from spaces.db import Database
from spaces.errors import (
    AlreadyExists,
    Forbidden,
    InvalidName,
    NotFound,
    SpaceError,
    UsageUnavailable,
    UserLimitReached,
)
from spaces.settings import Settings

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
MAX_BODY = 64 * 1024
STATUSES = ("active", "readonly", "suspended")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


_REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request",
            401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 409: "Conflict", 413: "Payload Too Large",
            415: "Unsupported Media Type", 500: "Internal Server Error",
            503: "Service Unavailable"}


def _respond(start_response: StartResponse, status: int, body: Any,
             headers: list[tuple[str, str]] | None = None) -> list[bytes]:
    data = b"" if status == 204 else (json.dumps(body, ensure_ascii=False) + "\n").encode()
    hs = [("Content-Type", "application/json; charset=utf-8"),
          ("Content-Length", str(len(data))), ("Cache-Control", "no-store")]
    start_response(f"{status} {_REASONS[status]}", hs + (headers or []))
    return [data]


# -- shapes ---------------------------------------------------------------------------

def _space(settings: Settings, info: service.SpaceInfo) -> dict[str, Any]:
    return {"name": info.name, "tier": info.tier, "status": info.status,
            "quota_bytes": info.quota_bytes, "used_bytes": info.used_bytes,
            "used_files": info.used_files, "max_users": info.max_users,
            "owner_email": info.owner_email,
            "paid_until": info.paid_until.isoformat() if info.paid_until else None,
            "drive_url": f"{settings.base_url()}/dav/{info.name}/"}


def _body(environ: dict[str, Any]) -> dict[str, Any]:
    ctype = environ.get("CONTENT_TYPE", "")
    if not ctype.startswith("application/json"):
        raise ApiError(415, "unsupported_media_type", "Envíe el cuerpo como application/json.")
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise ApiError(400, "bad_request", "Content-Length no válido.") from None
    if length > MAX_BODY:
        raise ApiError(413, "too_large", "El cuerpo de la petición es demasiado grande.")
    raw = environ["wsgi.input"].read(length) if length else b""
    try:
        data = json.loads(raw or b"null")
    except ValueError:
        raise ApiError(400, "bad_json", "El cuerpo no es JSON válido.") from None
    if not isinstance(data, dict):
        raise ApiError(400, "bad_json", "El cuerpo debe ser un objeto JSON.")
    return data


def _field(data: dict[str, Any], name: str, *, required: bool = True,
           choices: Iterable[str] | None = None) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise ApiError(400, "missing_field", f"Falta el campo '{name}'.")
        return None
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, "bad_field", f"El campo '{name}' debe ser texto no vacío.")
    if choices is not None and value not in choices:
        raise ApiError(400, "bad_field",
                       f"El campo '{name}' debe ser uno de: {', '.join(choices)}.")
    return value


# -- handlers -------------------------------------------------------------------------

@dataclass
class Ctx:
    settings: Settings
    db: Database
    environ: dict[str, Any]
    params: dict[str, str]

    def query(self, name: str) -> str | None:
        from urllib.parse import parse_qs

        values = parse_qs(self.environ.get("QUERY_STRING", "")).get(name)
        return values[0] if values else None


def list_spaces(c: Ctx) -> tuple[int, Any]:
    return 200, [_space(c.settings, i) for i in service.list_spaces(c.db)]


def create_space(c: Ctx) -> tuple[int, Any]:
    data = _body(c.environ)
    info = service.create_space(c.settings, c.db, _field(data, "name") or "",
                                _field(data, "tier") or "",
                                _field(data, "owner_email", required=False))
    return 201, _space(c.settings, info)


def show_space(c: Ctx) -> tuple[int, Any]:
    info = service.get_space(c.db, c.params["space"])
    d = _space(c.settings, info)
    d["users"] = len(service.list_members(c.db, info.name))
    return 200, d


def change_space(c: Ctx) -> tuple[int, Any]:
    data = _body(c.environ)
    tier = _field(data, "tier", required=False)
    status = _field(data, "status", required=False, choices=STATUSES)
    if tier is None and status is None:
        raise ApiError(400, "missing_field", "Indique 'tier' o 'status'.")
    info = service.get_space(c.db, c.params["space"])
    if tier is not None:
        info = service.change_tier(c.settings, c.db, info.name, tier)
    if status is not None:
        info = service.set_status(c.db, info.name, status)
    log.info("api: space %s changed: tier=%s status=%s", info.name, tier, status)
    return 200, _space(c.settings, info)


def usage(c: Ctx) -> tuple[int, Any]:
    info = service.get_space(c.db, c.params["space"])
    u = quota.usage(c.db, info.id)
    return 200, {"used_bytes": u.used_bytes, "used_files": u.used_files,
                 "quota_bytes": u.quota_bytes, "available_bytes": u.available_bytes}


def list_members(c: Ctx) -> tuple[int, Any]:
    return 200, [{"username": m.username, "role": m.role}
                 for m in service.list_members(c.db, c.params["space"])]


def add_member(c: Ctx) -> tuple[int, Any]:
    data = _body(c.environ)
    m = service.add_member(c.db, c.params["space"], _field(data, "username") or "",
                           _field(data, "password") or "",
                           _field(data, "role", required=False, choices=service.ROLES)
                           or "editor")
    return 201, {"username": m.username, "role": m.role}


def remove_member(c: Ctx) -> tuple[int, Any]:
    service.remove_member(c.db, c.params["space"], c.params["username"])
    return 204, None


def list_cfdi(c: Ctx) -> tuple[int, Any]:
    from spaces import cfdi_index

    info = service.get_space(c.db, c.params["space"])
    docs = cfdi_index.search(c.db, info.id, cfdi_index.Query(
        uuid=c.query("uuid"), rfc=c.query("rfc")))
    keys = ("uuid", "tipo", "emisor_rfc", "receptor_rfc", "fecha", "total", "moneda", "path",
            "size", "sha256", "protected_until", "cancelled")
    out = []
    for d in docs:
        row = {}
        for k in keys:
            v = getattr(d, k)
            row[k] = v.isoformat(timespec="seconds") if hasattr(v, "isoformat") else v
        out.append(row)
    return 200, out


# -- routes and their OpenAPI description -----------------------------------------------

SPACE_SCHEMA = {"type": "object", "required": ["name", "tier", "status", "quota_bytes",
                                                "used_bytes", "used_files", "drive_url"],
                "properties": {
                    "name": {"type": "string"}, "tier": {"type": "string"},
                    "status": {"type": "string", "enum": list(STATUSES)},
                    "quota_bytes": {"type": "integer"}, "used_bytes": {"type": "integer"},
                    "used_files": {"type": "integer"},
                    "max_users": {"type": "integer", "nullable": True},
                    "owner_email": {"type": "string", "nullable": True},
                    "paid_until": {"type": "string", "format": "date", "nullable": True},
                    "drive_url": {"type": "string"}, "users": {"type": "integer"}}}
MEMBER_SCHEMA = {"type": "object", "required": ["username", "role"],
                 "properties": {"username": {"type": "string"},
                                "role": {"type": "string", "enum": list(service.ROLES)}}}
USAGE_SCHEMA = {"type": "object",
                "required": ["used_bytes", "used_files", "quota_bytes", "available_bytes"],
                "properties": {k: {"type": "integer"} for k in
                               ("used_bytes", "used_files", "quota_bytes", "available_bytes")}}
CFDI_SCHEMA = {"type": "object", "required": ["uuid", "path", "sha256"],
               "properties": {"uuid": {"type": "string", "nullable": True},
                              "path": {"type": "string"}, "sha256": {"type": "string"},
                              "protected_until": {"type": "string", "nullable": True}}}
ERROR_SCHEMA = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["code", "message"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}}


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    handler: Callable[[Ctx], tuple[int, Any]]
    summary: str
    ok: int
    schema: dict[str, Any] | None
    errors: tuple[int, ...]
    request: dict[str, Any] | None = None
    query: tuple[str, ...] = ()

    @property
    def pattern(self) -> re.Pattern[str]:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.template)
        return re.compile(f"^{regex}$")


def _array(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": schema}


ROUTES = (
    Route("GET", "/spaces", list_spaces, "Lista los espacios", 200, _array(SPACE_SCHEMA), ()),
    Route("POST", "/spaces", create_space, "Crea un espacio", 201, SPACE_SCHEMA,
          (400, 409, 413, 415),
          {"type": "object", "required": ["name", "tier"],
           "properties": {"name": {"type": "string"}, "tier": {"type": "string"},
                          "owner_email": {"type": "string"}}}),
    Route("GET", "/spaces/{space}", show_space, "Muestra un espacio", 200, SPACE_SCHEMA,
          (404,)),
    Route("PATCH", "/spaces/{space}", change_space,
          "Cambia el plan o el estado (suspender, solo lectura, activo)", 200, SPACE_SCHEMA,
          (400, 404, 413, 415),
          {"type": "object", "properties": {"tier": {"type": "string"}, "status": {
              "type": "string", "enum": list(STATUSES)}}}),
    Route("GET", "/spaces/{space}/usage", usage, "Uso y cuota de un espacio", 200,
          USAGE_SCHEMA, (404,)),
    Route("GET", "/spaces/{space}/members", list_members, "Usuarios de un espacio", 200,
          _array(MEMBER_SCHEMA), (404,)),
    Route("POST", "/spaces/{space}/members", add_member, "Agrega un usuario", 201,
          MEMBER_SCHEMA, (400, 403, 404, 409, 413, 415),
          {"type": "object", "required": ["username", "password"],
           "properties": {"username": {"type": "string"}, "password": {"type": "string"},
                          "role": {"type": "string", "enum": list(service.ROLES)}}}),
    Route("DELETE", "/spaces/{space}/members/{username}", remove_member,
          "Elimina un usuario", 204, None, (404,)),
    Route("GET", "/spaces/{space}/cfdi", list_cfdi, "Busca en el índice de CFDI", 200,
          _array(CFDI_SCHEMA), (404,), query=("uuid", "rfc")),
)


def openapi() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for r in ROUTES:
        op: dict[str, Any] = {"summary": r.summary, "operationId":
                              f"{r.method.lower()}_{r.handler.__name__}", "responses": {}}
        params = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                  for p in re.findall(r"\{(\w+)\}", r.template)]
        params += [{"name": q, "in": "query", "required": False, "schema": {"type": "string"}}
                   for q in r.query]
        if params:
            op["parameters"] = params
        if r.request:
            op["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": r.request}}}
        ok: dict[str, Any] = {"description": "Correcto"}
        if r.schema:
            ok["content"] = {"application/json": {"schema": r.schema}}
        op["responses"][str(r.ok)] = ok
        for status in (*r.errors, 401, 503):
            op["responses"][str(status)] = {"description": _REASONS[status], "content": {
                "application/json": {"schema": ERROR_SCHEMA}}}
        paths.setdefault(f"/api/v1{r.template}", {})[r.method.lower()] = op
    return {
        "openapi": "3.0.3",
        "info": {"title": "Resguardo: API de operadores", "version": "1",
                 "description": "Espacios, usuarios, uso e índice de CFDI. Autenticación: "
                                "'Authorization: Bearer <token>' (resguardo admin token "
                                "create NOMBRE)."},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": paths,
    }


_ERRORS: tuple[tuple[type[SpaceError], int, str], ...] = (
    (NotFound, 404, "not_found"), (AlreadyExists, 409, "conflict"),
    (UserLimitReached, 403, "user_limit"), (Forbidden, 403, "forbidden"),
    (InvalidName, 400, "invalid"), (UsageUnavailable, 503, "unavailable"),
)


def make_api(settings: Settings, db: Database) -> Callable[..., Iterable[bytes]]:
    """The WSGI app answering ``/api/v1/...``."""
    spec = json.dumps(openapi(), ensure_ascii=False, indent=1).encode()

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/api/v1/openapi.json" and method in ("GET", "HEAD"):
            start_response("200 OK", [("Content-Type", "application/json"),
                                      ("Content-Length", str(len(spec)))])
            return [spec]
        try:
            auth = environ.get("HTTP_AUTHORIZATION", "")
            token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
            who = apitokens.verify(db, token) if token else None
            if who is None:
                log.info("api auth failed from %s", environ.get("REMOTE_ADDR", "?"))
                raise ApiError(401, "unauthorized",
                               "Falta un token válido: 'Authorization: Bearer <token>'.")
            rel = path[len("/api/v1"):] if path.startswith("/api/v1/") else None
            matched = [(r, m) for r in ROUTES if rel is not None
                       for m in [r.pattern.match(rel.rstrip("/") or "/")] if m]
            if not matched:
                raise ApiError(404, "not_found", "No existe esa dirección de la API.")
            for r, m in matched:
                if r.method == method:
                    from urllib.parse import unquote

                    params = {k: unquote(v) for k, v in m.groupdict().items()}
                    status, body = r.handler(Ctx(settings, db, environ, params))
                    log.info("api: %s %s by token %s -> %d", method, path, who, status)
                    return _respond(start_response, status, body)
            allowed = ", ".join(sorted({r.method for r, _ in matched}))
            raise ApiError(405, "method_not_allowed", f"Métodos permitidos: {allowed}.")
        except ApiError as exc:
            extra = [("WWW-Authenticate", 'Bearer realm="resguardo"')] \
                if exc.status == 401 else []
            return _respond(start_response, exc.status,
                            {"error": {"code": exc.code, "message": exc.message}}, extra)
        except SpaceError as exc:
            for cls, status, code in _ERRORS:
                if isinstance(exc, cls):
                    return _respond(start_response, status,
                                    {"error": {"code": code, "message": str(exc)}})
            return _respond(start_response, 400, {"error": {"code": "invalid",
                                                            "message": str(exc)}})
        except SQLAlchemyError as exc:
            log.error("api: database unavailable: %s", exc.__class__.__name__)
            return _respond(start_response, 503, {"error": {
                "code": "unavailable",
                "message": "La base de datos no responde; intente de nuevo en unos segundos."}},
                [("Retry-After", "5")])
        except Exception:
            log.exception("api: unexpected error on %s %s", method, path)
            return _respond(start_response, 500, {"error": {
                "code": "internal", "message": "Error interno; quedó registrado."}})

    return app
