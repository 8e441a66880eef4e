"""The operator API as a WSGI app (:func:`make_api`): the bearer token and the
pause of an address that keeps sending bad ones, dispatch on the route table
(404, 405 with ``Allow``), the request checked, and every error, domain or
database, answered as ``{"error": {"code", "message"}}`` with its status."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy.exc import DataError, SQLAlchemyError

from resguardo.api.handlers import Ctx
from resguardo.api.routes import REASONS, Route, openapi, routes
from resguardo.api.schemas import PATH_PARAMS
from resguardo.api.validation import ApiError, read_body, read_query, validate
from spaces.access import apitokens, throttle
from spaces.access.throttle import LoginThrottle
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
from spaces.core.settings import Settings

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]


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
    start_response(f"{status} {REASONS[status]}", hs + (headers or []))
    return [data]


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
            ctx.query = read_query(environ, r.query)
            if r.request:
                ctx.body = read_body(environ, r.request)
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
