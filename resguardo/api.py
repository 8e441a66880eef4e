"""The operator REST API under ``/api/v1/`` (JSON, bearer tokens).

Every answer is JSON; every error is ``{"error": {"code", "message"}}`` with a
Spanish message and a status the OpenAPI document lists for that operation
(400, 401, 403, 404, 409, 413, 415, 503; 405 for a method a path does not
have, with ``Allow``), never a traceback. The OpenAPI document
(``/api/v1/openapi.json``) is built from the same route table that dispatches,
and the request bodies, query and path parameters are checked against the very
schemas it publishes, so the document and the behaviour cannot drift apart.

Lists are pages: ``?limit=`` (1-500, default 50) and ``?offset=``; the answer is
``{"items": [...], "total", "limit", "offset", "next_offset"}``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from jsonschema import Draft202012Validator, ValidationError, validators
from sqlalchemy.exc import DataError, SQLAlchemyError

from spaces.access import apitokens, pages, service, throttle
from spaces.access.throttle import LoginThrottle
from spaces.core import plans
from spaces.core.audit import Actor
from spaces.core.db import Database
from spaces.core.errors import (
    AlreadyExists,
    Forbidden,
    InvalidName,
    NotFound,
    SpaceError,
    UsageUnavailable,
    UserLimitReached,
)
from spaces.core.passwords import MIN_PASSWORD_LENGTH
from spaces.core.settings import Settings
from spaces.files import quota

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
MAX_BODY = 64 * 1024
STATUSES = ("active", "readonly", "suspended")
DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET = 50, 500, 10**9


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str,
                 headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or []


_REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request",
            401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 409: "Conflict", 413: "Payload Too Large",
            415: "Unsupported Media Type", 429: "Too Many Requests",
            500: "Internal Server Error",
            503: "Service Unavailable"}
_DESCRIPTIONS = {400: "Petición no válida (cuerpo, campo o parámetro)",
                 401: "Falta el token o no es válido",
                 403: "No permitido (p. ej. el espacio ya tiene los usuarios de su plan)",
                 404: "No existe el espacio, el usuario o la dirección",
                 409: "Ya existe", 413: "Cuerpo de más de 64 KiB",
                 415: "El cuerpo no es application/json",
                 429: "Demasiados tokens no válidos desde esta dirección: espere "
                      "(Retry-After)",
                 503: "La base de datos no responde; reintente (Retry-After)"}


def _respond(start_response: StartResponse, status: int, body: Any,
             headers: list[tuple[str, str]] | None = None) -> list[bytes]:
    data = b""
    if status != 204:
        try:
            data = (json.dumps(body, ensure_ascii=False) + "\n").encode()
        except UnicodeEncodeError:  # a lone surrogate echoed from the request
            data = (json.dumps(body) + "\n").encode()
    hs = [("Content-Type", "application/json; charset=utf-8"),
          ("Content-Length", str(len(data))), ("Cache-Control", "no-store")]
    start_response(f"{status} {_REASONS[status]}", hs + (headers or []))
    return [data]


# -- the schemas: published in the document and enforced on every request --------------

def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` that also admits null (OpenAPI 3.1: a type list)."""
    return {**schema, "type": [schema["type"], "null"]}


# Printable, never a control character or a space: what a database column, a log
# line and an e-mail header can all carry.
_VISIBLE = r"[^\x00-\x20\x7f@]"
SPACE_NAME = {"type": "string", "pattern": r"^[a-z0-9][a-z0-9_-]{1,62}$",
              "description": "De 2 a 63 letras minúsculas sin acentos, números, guiones o "
                             "guiones bajos; empieza con letra o número (p. ej. el RFC)."}
USERNAME = {"type": "string", "pattern": r"^[a-z0-9][a-z0-9._@-]{0,63}$",
            "description": "Hasta 64 letras minúsculas sin acentos, números, punto, guion, "
                           "guion bajo o arroba; empieza con letra o número."}
PASSWORD = {"type": "string", "minLength": MIN_PASSWORD_LENGTH, "maxLength": 200,
            "pattern": r"^[^\x00-\x1f\x7f]+$",
            "description": f"De {MIN_PASSWORD_LENGTH} a 200 caracteres, sin caracteres "
                           "de control."}
EMAIL = {"type": "string", "maxLength": 254,
         "pattern": f"^{_VISIBLE}{{1,64}}@{_VISIBLE}+\\.{_VISIBLE}+$",
         "description": "Un correo electrónico (usuario@dominio.tld), hasta 254 caracteres."}
ROLE = {"type": "string", "enum": list(service.ROLES)}
STATUS = {"type": "string", "enum": list(STATUSES)}
DATE = {"type": "string", "format": "date", "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
        "description": "AAAA-MM-DD"}

#: The counters of a space, as every door names them (see spaces.files.quota.as_dict).
_USAGE_FIELDS = {
    "used_bytes": "bytes de los archivos actuales (lo que cuenta el plan)",
    "used_files": "archivos y carpetas actuales",
    "quota_bytes": "el plan",
    "available_bytes": "lo que queda del plan",
    "reserve_bytes": "la reserva para papelera y versiones, fuera del plan",
    "reserve_used_bytes": "bytes en la papelera y en versiones anteriores",
    "reserve_used_files": "elementos en la papelera y versiones anteriores",
}
SPACE_SCHEMA = {"type": "object", "required": ["name", "tier", "status", *_USAGE_FIELDS,
                                                "max_users", "owner_email", "paid_until",
                                                "drive_url"],
                "properties": {
                    "name": {"type": "string"}, "tier": {"type": "string"},
                    "status": STATUS,
                    **{k: {"type": "integer", "description": d}
                       for k, d in _USAGE_FIELDS.items()},
                    "max_users": nullable({"type": "integer",
                                            "description": "null: sin límite de usuarios"}),
                    "owner_email": nullable({"type": "string"}),
                    "paid_until": nullable({"type": "string", "format": "date"}),
                    "drive_url": {"type": "string"},
                    "users": {"type": "integer", "description": "sólo al pedir un espacio"}},
                "additionalProperties": False}
MEMBER_SCHEMA = {"type": "object", "required": ["username", "role"],
                 "properties": {"username": {"type": "string"}, "role": ROLE},
                 "additionalProperties": False}
USAGE_SCHEMA = {"type": "object",
                "required": list(_USAGE_FIELDS),
                "properties": {k: {"type": "integer", "description": d}
                               for k, d in _USAGE_FIELDS.items()},
                "additionalProperties": False}
_NULLABLE_TEXT = {"type": ["string", "null"]}
CFDI_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["uuid", "version", "tipo", "emisor_rfc", "receptor_rfc", "fecha", "total",
                 "moneda", "path", "size", "sha256", "ingested_at", "protected_until",
                 "cancelled"],
    "properties": {
        "uuid": _NULLABLE_TEXT, "version": _NULLABLE_TEXT, "tipo": _NULLABLE_TEXT,
        "emisor_rfc": _NULLABLE_TEXT, "receptor_rfc": _NULLABLE_TEXT,
        "fecha": _NULLABLE_TEXT,
        "total": nullable({"type": "string",
                           "description": "importe decimal como texto, sin redondear"}),
        "moneda": _NULLABLE_TEXT, "path": {"type": "string"},
        "size": {"type": "integer"}, "sha256": {"type": "string"},
        "ingested_at": {"type": "string", "format": "date-time"},
        "protected_until": nullable({"type": "string", "format": "date-time"}),
        "cancelled": {"type": "boolean"}},
    "additionalProperties": False}
ERROR_SCHEMA = {"type": "object", "required": ["error"], "additionalProperties": False,
                "properties": {"error": {
                    "type": "object", "required": ["code", "message"],
                    "additionalProperties": False,
                    "properties": {"code": {"type": "string"},
                                   "message": {"type": "string"}}}}}

PATH_PARAMS = {"space": SPACE_NAME, "username": USERNAME}
PAGE_PARAMS = {
    "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT,
              "description": f"Cuántos elementos (1 a {MAX_LIMIT})."},
    "offset": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0,
               "description": "Cuántos saltar; la respuesta trae next_offset."},
}
CFDI_PARAMS: dict[str, dict[str, Any]] = {
    "uuid": {"type": "string", "pattern": r"^[0-9A-Fa-f-]{1,36}$",
             "description": "UUID del timbre (mayúsculas o minúsculas)."},
    "rfc": {"type": "string", "pattern": r"^[A-Za-z0-9&Ññ]{1,13}$",
            "description": "RFC del emisor o del receptor."},
    "date_from": {**DATE, "description": "Fecha del CFDI desde (AAAA-MM-DD)."},
    "date_to": {**DATE, "description": "Fecha del CFDI hasta, inclusive (AAAA-MM-DD)."},
    **PAGE_PARAMS,
}


def _page_schema(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": ["items", "total", "limit", "offset", "next_offset"],
            "properties": {"items": {"type": "array", "items": item},
                           "total": {"type": "integer"}, "limit": {"type": "integer"},
                           "offset": {"type": "integer"},
                           "next_offset": nullable({"type": "integer",
                                           "description": "null en la última página"})},
            "additionalProperties": False}


def _invalid(name: str, why: str) -> ApiError:
    return ApiError(400, "bad_field", f"El campo '{name}' no es válido: {why}")


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]
                  ) -> Iterator[ValidationError]:
    # JSON Schema patterns are ECMA-262: "$" does not match before a final newline
    # as Python's does ("abc\n" is no space name), so anchor at the very end.
    if isinstance(instance, str) and not re.search(re.sub(r"\$$", r"\\Z", pattern), instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


#: JSON Schema 2020-12 (OpenAPI 3.1's dialect) with formats checked and ECMA anchors.
_Validator = validators.extend(Draft202012Validator, {"pattern": _ecma_pattern})
_FORMATS = Draft202012Validator.FORMAT_CHECKER
_TYPES = {"object": "debe ser un objeto JSON.", "string": "debe ser texto.",
          "integer": "debe ser un número entero.", "null": "debe ser null."}


#: Which of several faults at one level a client hears of first.
_FIRST = {"required": 0, "additionalProperties": 1, "minProperties": 2, "type": 3}


def _spanish(error: ValidationError, name: str) -> ApiError:
    """The 400 a client reads for the first thing wrong: the field it names, in Spanish."""
    field = str(error.path[-1]) if error.path else name
    kind = error.validator
    rule: Any = error.validator_value
    value: Any = error.instance
    sub: dict[str, Any] = dict(error.schema) if isinstance(error.schema, dict) else {}
    if kind == "required":
        missing = next(k for k in rule if k not in value)
        return ApiError(400, "missing_field", f"Falta el campo '{missing}'.")
    if kind in ("additionalProperties", "unevaluatedProperties"):
        extra = sorted(k for k in value if k not in sub.get("properties", {}))
        return ApiError(400, "unknown_field", f"Campo desconocido: '{extra[0]}'.")
    if kind == "minProperties":
        return ApiError(400, "missing_field",
                        f"Indique al menos uno de: {', '.join(sub['properties'])}.")
    if kind == "type":
        types = [rule] if isinstance(rule, str) else list(rule)
        why = "no puede ser null." if value is None else _TYPES[types[0]]
        return _invalid(field, why)
    if kind == "minLength":
        return _invalid(field, f"debe tener al menos {rule} caracteres.")
    if kind == "maxLength":
        return _invalid(field, f"admite a lo más {rule} caracteres.")
    if kind in ("minimum", "maximum"):
        return _invalid(field, f"debe estar entre {sub.get('minimum')} y "
                               f"{sub.get('maximum')}.")
    if kind == "enum":
        return _invalid(field, f"debe ser uno de: {', '.join(map(str, rule))}.")
    if kind == "format":
        return _invalid(field, "no es una fecha (AAAA-MM-DD).")
    return _invalid(field, sub.get("description", "no tiene la forma esperada."))


def validate(schema: dict[str, Any], value: Any, name: str) -> None:
    """Check ``value`` against ``schema`` (JSON Schema 2020-12, as the OpenAPI
    document publishes it). Raises a 400 ApiError that names the field, in Spanish."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800") JSON let through
        raise _invalid(name, "no es texto Unicode válido.") from None
    errors = _Validator(schema, format_checker=_FORMATS).iter_errors(value)
    error = min(errors, default=None, key=lambda e: (len(e.path), _FIRST.get(str(e.validator), 9)))
    if error is not None:
        raise _spanish(error, name)


def _read_body(environ: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ctype = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise ApiError(415, "unsupported_media_type", "Envíe el cuerpo como application/json.")
    raw_length = environ.get("CONTENT_LENGTH") or ""
    if raw_length:
        if not raw_length.isdigit():
            raise ApiError(400, "bad_request", "Content-Length no válido.")
        length = int(raw_length)
    elif "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        length = MAX_BODY + 1
    else:
        length = 0
    if length > MAX_BODY and raw_length:
        raise ApiError(413, "too_large", "El cuerpo de la petición es demasiado grande.")
    raw = environ["wsgi.input"].read(length) if length else b""
    if len(raw) > MAX_BODY:
        raise ApiError(413, "too_large", "El cuerpo de la petición es demasiado grande.")
    try:
        data = json.loads(raw.decode("utf-8") or "null")
    except ValueError:  # UnicodeDecodeError is one
        raise ApiError(400, "bad_json", "El cuerpo no es JSON válido en UTF-8.") from None
    if not isinstance(data, dict):
        raise ApiError(400, "bad_json", "El cuerpo debe ser un objeto JSON.")
    validate(schema, data, "cuerpo")
    return data


def _read_query(environ: dict[str, Any], params: dict[str, dict[str, Any]]
                ) -> dict[str, Any]:
    """The declared query parameters, typed and checked (defaults filled in). An
    undeclared one is refused (400): a misspelt ``limt`` must not silently list
    everything."""
    try:
        raw = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True,
                       encoding="utf-8", errors="strict", max_num_fields=64)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "bad_query", "La cadena de consulta no es válida.") from None
    unknown = sorted(set(raw) - set(params))
    if unknown:
        known = ", ".join(params) or "ninguno"
        raise ApiError(400, "bad_query", f"Parámetro desconocido: '{unknown[0]}' "
                                         f"(esta operación admite: {known}).")
    out: dict[str, Any] = {}
    for name, schema in params.items():
        values = raw.get(name)
        if not values:
            out[name] = schema.get("default")
            continue
        if len(values) > 1:
            raise _invalid(name, "aparece más de una vez.")
        value: Any = values[0]
        if schema["type"] == "integer":
            if not re.fullmatch(r"[0-9]{1,12}", value):
                raise _invalid(name, "debe ser un número entero.")
            value = int(value)
        validate(schema, value, name)
        out[name] = value
    return out


# -- handlers -------------------------------------------------------------------------

@dataclass
class Ctx:
    settings: Settings
    db: Database
    token: str
    params: dict[str, str]
    address: str | None = None
    query: dict[str, Any] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def actor(self) -> Actor:
        """Who the audit log names for a change made through the API."""
        return Actor(f"api:{self.token}", self.address, "api")


def _space(settings: Settings, info: service.SpaceInfo) -> dict[str, Any]:
    return {"name": info.name, "tier": info.tier, "status": info.status,
            **quota.as_dict(info.usage), "max_users": info.max_users,
            "owner_email": info.owner_email,
            "paid_until": info.paid_until.isoformat() if info.paid_until else None,
            "drive_url": f"{settings.base_url()}/dav/{info.name}/"}


def _member(m: service.MemberInfo) -> dict[str, Any]:
    return {"username": m.username, "role": m.role}


def _page(page: pages.Page[Any], shape: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    return {"items": [shape(x) for x in page.items], "total": page.total,
            "limit": page.limit, "offset": page.offset, "next_offset": page.next_offset}


def list_spaces(c: Ctx) -> tuple[int, Any]:
    page = pages.spaces(c.db, c.query["limit"], c.query["offset"])
    return 200, _page(page, lambda i: _space(c.settings, i))


def create_space(c: Ctx) -> tuple[int, Any]:
    info = service.create_space(c.settings, c.db, c.body["name"], c.body["tier"],
                                c.body.get("owner_email"), actor=c.actor)
    return 201, _space(c.settings, info)


def show_space(c: Ctx) -> tuple[int, Any]:
    info = service.get_space(c.db, c.params["space"])
    d = _space(c.settings, info)
    d["users"] = pages.member_count(c.db, info.id)
    return 200, d


def change_space(c: Ctx) -> tuple[int, Any]:
    tier, status = c.body.get("tier"), c.body.get("status")
    info = service.get_space(c.db, c.params["space"])
    if tier is not None:
        info = service.change_tier(c.settings, c.db, info.name, tier, actor=c.actor)
    if status is not None:
        info = service.set_status(c.db, info.name, status, actor=c.actor)
    log.info("api: space changed: space=%s tier=%s status=%s token=%s",
             info.name, tier, status, c.token)
    return 200, _space(c.settings, info)


def usage(c: Ctx) -> tuple[int, Any]:
    info = service.get_space(c.db, c.params["space"])
    return 200, quota.as_dict(quota.usage(c.db, info.id))


def list_members(c: Ctx) -> tuple[int, Any]:
    info = service.get_space(c.db, c.params["space"])
    return 200, _page(pages.members(c.db, info.id, c.query["limit"], c.query["offset"]),
                      _member)


def add_member(c: Ctx) -> tuple[int, Any]:
    m = service.add_member(c.db, c.params["space"], c.body["username"], c.body["password"],
                           c.body.get("role") or "editor", actor=c.actor)
    return 201, _member(m)


def remove_member(c: Ctx) -> tuple[int, Any]:
    service.remove_member(c.db, c.params["space"], c.params["username"], actor=c.actor)
    return 204, None


def _cfdi(d: Any) -> dict[str, Any]:
    row = {k: getattr(d, k) for k in CFDI_SCHEMA["properties"]}
    for k in ("ingested_at", "protected_until"):
        if row[k] is not None:
            row[k] = row[k].isoformat(timespec="seconds") + "Z"  # stored in UTC
    row["cancelled"] = bool(row["cancelled"])
    return row


def list_cfdi(c: Ctx) -> tuple[int, Any]:
    info = service.get_space(c.db, c.params["space"])
    q = c.query
    page = pages.cfdi(c.db, info.id, pages.CfdiFilter(
        uuid=q["uuid"], rfc=q["rfc"], date_from=q["date_from"], date_to=q["date_to"]),
        q["limit"], q["offset"])
    return 200, _page(page, _cfdi)


# -- routes and their OpenAPI description -----------------------------------------------

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
    query: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: (path parameter, field of the answer) naming what a POST created: the
    #: document links it to the operations on it (OpenAPI links).
    creates: tuple[str, str] | None = None

    @property
    def operation_id(self) -> str:
        return f"{self.method.lower()}_{self.handler.__name__}"

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"\{(\w+)\}", self.template)

    @property
    def pattern(self) -> re.Pattern[str]:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.template)
        return re.compile(f"^{regex}$")

    @property
    def statuses(self) -> tuple[int, ...]:
        """Every status this operation can answer (besides 405 for other methods)."""
        body = (413, 415) if self.request else ()
        path = (404,) if "{" in self.template else ()
        # 400 everywhere: any operation refuses an unknown query parameter.
        # 429 everywhere: a client that kept sending bad tokens is paused (its address).
        return tuple(sorted({self.ok, *self.errors, *body, *path, 400, 401, 429, 503}))


def routes(settings: Settings) -> tuple[Route, ...]:
    """The API's operations; the tier enum lists the plans ``settings`` configures."""
    tier = {"type": "string", "enum": [t.name for t in plans.list_tiers(settings)],
            "description": "Un plan configurado."}
    return (
        Route("GET", "/spaces", list_spaces, "Lista los espacios (por nombre)", 200,
              _page_schema(SPACE_SCHEMA), (), query=PAGE_PARAMS),
        Route("POST", "/spaces", create_space, "Crea un espacio", 201, SPACE_SCHEMA, (409,),
              {"type": "object", "required": ["name", "tier"], "additionalProperties": False,
               "properties": {"name": SPACE_NAME, "tier": tier,
                              "owner_email": nullable(EMAIL)}},
              creates=("space", "name")),
        Route("GET", "/spaces/{space}", show_space, "Muestra un espacio", 200, SPACE_SCHEMA,
              ()),
        Route("PATCH", "/spaces/{space}", change_space,
              "Cambia el plan o el estado (suspender, solo lectura, activo)", 200,
              SPACE_SCHEMA, (),
              {"type": "object", "minProperties": 1, "additionalProperties": False,
               "properties": {"tier": tier, "status": STATUS}}),
        Route("GET", "/spaces/{space}/usage", usage, "Uso y cuota de un espacio", 200,
              USAGE_SCHEMA, ()),
        Route("GET", "/spaces/{space}/members", list_members,
              "Usuarios de un espacio (el más antiguo primero)", 200,
              _page_schema(MEMBER_SCHEMA), (), query=PAGE_PARAMS),
        Route("POST", "/spaces/{space}/members", add_member,
              "Agrega un usuario (nunca más de los que permite el plan)", 201,
              MEMBER_SCHEMA, (403, 409),
              {"type": "object", "required": ["username", "password"],
               "additionalProperties": False,
               "properties": {"username": USERNAME, "password": PASSWORD, "role": ROLE}},
              creates=("username", "username")),
        Route("DELETE", "/spaces/{space}/members/{username}", remove_member,
              "Elimina un usuario", 204, None, ()),
        Route("GET", "/spaces/{space}/cfdi", list_cfdi,
              "Busca en el índice de CFDI (por fecha)", 200, _page_schema(CFDI_SCHEMA), (),
              query=CFDI_PARAMS),
    )


def _links(creator: Route, table: tuple[Route, ...]) -> dict[str, Any]:
    """OpenAPI links from what ``creator`` made to the operations on it."""
    assert creator.creates is not None
    param, prop = creator.creates
    prefix = f"{creator.template}/{{{param}}}"
    known = {param, *creator.path_params}
    links = {}
    for t in table:
        on_it = t.template == prefix or t.template.startswith(prefix + "/")
        if on_it and set(t.path_params) <= known:
            links[t.operation_id] = {"operationId": t.operation_id, "parameters": {
                p: f"$response.body#/{prop}" if p == param else f"$request.path.{p}"
                for p in t.path_params}}
    return links


def openapi(settings: Settings) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    table = routes(settings)
    for r in table:
        op: dict[str, Any] = {"summary": r.summary, "operationId": r.operation_id,
                              "responses": {}}
        params = [{"name": p, "in": "path", "required": True, "schema": PATH_PARAMS[p]}
                  for p in r.path_params]
        params += [{"name": q, "in": "query", "required": False, "schema": s,
                    "description": s.get("description", "")} for q, s in r.query.items()]
        if params:
            op["parameters"] = params
        if r.request:
            op["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": r.request}}}
        for status in r.statuses:
            resp: dict[str, Any] = {"description": _REASONS[status] if status == r.ok
                                    else _DESCRIPTIONS[status]}
            schema = r.schema if status == r.ok else ERROR_SCHEMA
            if schema:
                resp["content"] = {"application/json": {"schema": schema}}
            if status == 401:
                resp["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
            if status in (429, 503):
                resp["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
            if status == r.ok and r.creates:
                resp["links"] = _links(r, table)
            op["responses"][str(status)] = resp
        paths.setdefault(f"/api/v1{r.template}", {})[r.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Resguardo: API de operadores", "version": "1",
                 "description": "Espacios, usuarios, uso e índice de CFDI. Autenticación: "
                                "'Authorization: Bearer <token>' (tokens en /operador/tokens "
                                "o con 'resguardo admin token create NOMBRE'). Errores: "
                                "{\"error\": {\"code\", \"message\"}}. Listas por páginas "
                                "(limit, offset, next_offset)."},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": paths,
    }


#: The error code of each domain error (its status comes with it: spaces.core.errors).
_CODES: tuple[tuple[type[SpaceError], str], ...] = (
    (NotFound, "not_found"), (AlreadyExists, "conflict"), (UserLimitReached, "user_limit"),
    (Forbidden, "forbidden"), (InvalidName, "invalid"), (UsageUnavailable, "unavailable"),
)


def _path_params(route: Route, match: re.Match[str]) -> dict[str, str]:
    """Path parameters; one that cannot name anything (wrong form) is a 404."""
    params = match.groupdict()
    for name, value in params.items():
        try:
            validate(PATH_PARAMS[name], value, name)
        except ApiError:
            what = "el espacio" if name == "space" else "el usuario"
            raise ApiError(404, "not_found", f"No existe {what} indicado.") from None
    return params


def make_api(settings: Settings, db: Database) -> Callable[..., Iterable[bytes]]:
    """The WSGI app answering ``/api/v1/...``."""
    table = routes(settings)
    spec = json.dumps(openapi(settings), ensure_ascii=False, indent=1).encode()
    # The same pauses as every login door: a client that keeps sending bad tokens
    # is paused by its address (here and on the drive and the portal).
    pauses = LoginThrottle.from_settings(settings, db)
    retry_after = str(settings.auth.max_block_seconds)

    def answer(environ: dict[str, Any], method: str, path: str | None
               ) -> tuple[int, Any, list[tuple[str, str]], str | None]:
        """(status, body, extra headers, token name) for one request."""
        who = None
        try:
            addr = throttle.address(environ.get("REMOTE_ADDR"))
            if pauses.blocked(addr):
                raise ApiError(429, "too_many_attempts",
                               "Demasiados intentos con tokens no válidos desde esta "
                               "dirección; espere un minuto.", [("Retry-After", retry_after)])
            auth = environ.get("HTTP_AUTHORIZATION", "")
            token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
            who = apitokens.verify(db, token) if token else None
            if who is None:
                pauses.failure(addr)
                raise ApiError(401, "unauthorized",
                               "Falta un token válido: 'Authorization: Bearer <token>'.",
                               [("WWW-Authenticate", 'Bearer realm="resguardo"')])
            rel = path[len("/api/v1"):] if path and path.startswith("/api/v1/") else None
            matched = [(r, m) for r in table if rel is not None
                       for m in [r.pattern.match(rel.rstrip("/") or "/")] if m]
            if not matched:
                raise ApiError(404, "not_found", "No existe esa dirección de la API.")
            route = next(((r, m) for r, m in matched if r.method == method), None)
            if route is None:
                allowed = ", ".join(sorted({r.method for r, _ in matched}))
                raise ApiError(405, "method_not_allowed", f"Métodos permitidos: {allowed}.",
                               [("Allow", allowed)])
            r, m = route
            ctx = Ctx(settings, db, who, _path_params(r, m), environ.get("REMOTE_ADDR"))
            ctx.query = _read_query(environ, r.query)
            if r.request:
                ctx.body = _read_body(environ, r.request)
            status, body = r.handler(ctx)
            return status, body, [], who
        except ApiError as exc:
            return (exc.status, {"error": {"code": exc.code, "message": exc.message}},
                    exc.headers, who)
        except SpaceError as exc:
            status = exc.status
            code = next((co for cls, co in _CODES if isinstance(exc, cls)), "forbidden")
            extra = [("Retry-After", "5")] if status == 503 else []
            return status, {"error": {"code": code, "message": str(exc)}}, extra, who
        except DataError as exc:
            # The database refused a value the checks above let through: the
            # request's fault, not an outage (a retry would fail the same way).
            log.warning("api: value refused by the database: %s", exc.orig)
            return 400, {"error": {"code": "invalid",
                                   "message": "Un valor de la petición no es válido."}}, [], who
        except SQLAlchemyError as exc:
            log.error("api: database unavailable: %s", exc.__class__.__name__)
            return 503, {"error": {
                "code": "unavailable",
                "message": "La base de datos no responde; intente de nuevo en unos segundos."}
            }, [("Retry-After", "5")], who
        except Exception:
            log.exception("api: unexpected error on %s %s", method, path)
            return 500, {"error": {"code": "internal",
                                   "message": "Error interno; quedó registrado."}}, [], who

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            # WSGI hands the percent-decoded path as latin-1; the API speaks UTF-8.
            path: str | None = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8")
        except UnicodeError:
            path = None
        if path == "/api/v1/openapi.json" and method in ("GET", "HEAD"):
            start_response("200 OK", [("Content-Type", "application/json; charset=utf-8"),
                                      ("Content-Length", str(len(spec)))])
            return [spec]
        status, body, headers, who = answer(environ, method, path)
        log.info("api: %s %r by token %s from %s -> %d%s", method, path, who or "-",
                 environ.get("REMOTE_ADDR", "?"), status,
                 f" ({body['error']['code']})" if status >= 400 else "")
        return _respond(start_response, status, body, headers)

    return app
