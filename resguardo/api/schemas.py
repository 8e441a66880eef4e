"""The JSON Schemas of the operator API: what the OpenAPI document publishes
(:mod:`resguardo.api.routes`) and what every request is checked against
(:mod:`resguardo.api.validation`), one definition for both."""

from __future__ import annotations

from typing import Any

from spaces.access import service
from spaces.core.passwords import MIN_PASSWORD_LENGTH

STATUSES = ("active", "readonly", "suspended")
DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET = 50, 500, 10**9


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


def page_schema(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": ["items", "total", "limit", "offset", "next_offset"],
            "properties": {"items": {"type": "array", "items": item},
                           "total": {"type": "integer"}, "limit": {"type": "integer"},
                           "offset": {"type": "integer"},
                           "next_offset": nullable({"type": "integer",
                                           "description": "null en la última página"})},
            "additionalProperties": False}
