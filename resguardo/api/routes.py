"""The operator API's route table and the OpenAPI 3.1 document built from it:
the same table dispatches (:mod:`resguardo.api.app`), so the document and the
behaviour cannot drift apart."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from resguardo.api.handlers import (
    Ctx,
    add_member,
    change_space,
    create_space,
    list_cfdi,
    list_members,
    list_spaces,
    remove_member,
    show_space,
    usage,
)
from resguardo.api.schemas import (
    CFDI_PARAMS,
    CFDI_SCHEMA,
    EMAIL,
    ERROR_SCHEMA,
    MEMBER_SCHEMA,
    PAGE_PARAMS,
    PASSWORD,
    PATH_PARAMS,
    ROLE,
    SPACE_NAME,
    SPACE_SCHEMA,
    STATUS,
    USAGE_SCHEMA,
    USERNAME,
    nullable,
    page_schema,
)
from spaces.core import plans
from spaces.core.settings import Settings

REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request",
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
              page_schema(SPACE_SCHEMA), (), query=PAGE_PARAMS),
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
              page_schema(MEMBER_SCHEMA), (), query=PAGE_PARAMS),
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
              "Busca en el índice de CFDI (por fecha)", 200, page_schema(CFDI_SCHEMA), (),
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
            resp: dict[str, Any] = {"description": REASONS[status] if status == r.ok
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
