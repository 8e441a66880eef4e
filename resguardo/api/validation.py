"""The operator API's requests checked against the schemas it publishes
(JSON Schema 2020-12, OpenAPI 3.1's dialect, with jsonschema): the JSON body, the
query and path parameters; the first fault found is one 400 :class:`ApiError`
naming the field, in Spanish."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

from jsonschema import Draft202012Validator, ValidationError, validators

MAX_BODY = 64 * 1024


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str,
                 headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or []


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


def read_body(environ: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
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


def read_query(environ: dict[str, Any], params: dict[str, dict[str, Any]]
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
