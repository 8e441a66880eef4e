"""The WebDAV drive as a WSGI application: ``make_app(settings, db)``.

Mounted at ``/dav`` (each space at ``/dav/<space>/``) plus an empty collection
at ``/`` that answers Windows' first OPTIONS/PROPFIND probes. Basic auth only
(digest cannot work with argon2 hashes), locks and dead properties persisted,
the Win32 last-modified time Windows PROPPATCHes applied to the file.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from wsgidav.dav_error import HTTP_BAD_REQUEST
from wsgidav.error_printer import ErrorPrinter
from wsgidav.http_authenticator import HTTPAuthenticator
from wsgidav.mw.base_mw import BaseMiddleware
from wsgidav.request_resolver import RequestResolver
from wsgidav.wsgidav_app import WsgiDAVApp

from davserver.auth import STATE_KEY, AuthState, SpacesDomainController
from davserver.locks import (
    LIMITS_KEY,
    LockBreaker,
    LockPlaceholders,
    LockPolicy,
    install_batch_lock_manager,
)
from davserver.lockstorage import RedisLockStorage, SqlLockStorage
from davserver.properties import PropPatchTransaction, SqlPropertyManager
from davserver.propfind import FastPropfind
from davserver.provider import ProbeProvider, SpacesProvider
from davserver.request import HumanDAVError, request_context
from davserver.resources import is_status_file_path
from davserver.xmlbody import XML_BODY_METHODS, XmlBodies
from spaces.access import statusfile
from spaces.access.service import WRITER_ROLES, check_may_write
from spaces.core.db import Database
from spaces.core.errors import Forbidden
from spaces.core.settings import Settings
from spaces.files.locks import LockLimits

log = logging.getLogger(__name__)

WRITE_METHODS = frozenset({"PUT", "DELETE", "MKCOL", "COPY", "MOVE", "PROPPATCH", "LOCK",
                           "UNLOCK", "POST"})
#: What a read-only or suspended space still allows of the writes: releasing a
#: lock changes no file, and a lock taken before the space became read-only
#: would otherwise linger until it times out.
RELEASES = frozenset({"UNLOCK"})
#: Methods refused on the status file as a whole (COPY only reads its source).
STATUS_FILE_REFUSED = WRITE_METHODS - {"COPY"}

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def plain_response(start_response: StartResponse, status: str, message: str,
                   headers: list[tuple[str, str]] | None = None) -> list[bytes]:
    body = (message + "\n").encode("utf-8")
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(body)))] + (headers or []))
    return [body]


class RolePolicy(BaseMiddleware):
    """After authentication: a ``reader`` may read, never write (403); a
    read-only space is written by nobody (UNLOCK aside, see :data:`RELEASES`);
    and nobody changes the status file. Refusals are decided here, for the
    whole request, because inside WsgiDAV a PROPPATCH would answer 207 with a
    403 propstat and a LOCK an English page; every client gets one 403 with
    the Spanish reason (:func:`spaces.access.service.check_may_write`, as the web
    drive)."""

    def __init__(self, wsgidav_app: Any, next_app: WSGIApp, config: dict[str, Any]) -> None:
        super().__init__(wsgidav_app, next_app, config)

    def is_disabled(self) -> bool:
        return False

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Any:
        ctx = request_context(environ)
        if (ctx is not None and environ["REQUEST_METHOD"] in STATUS_FILE_REFUSED
                and is_status_file_path(environ.get("PATH_INFO", ""))):
            log.info("write refused (status file): space=%s user=%s %s", ctx.space.name,
                     ctx.username, environ["REQUEST_METHOD"])
            return plain_response(start_response, "403 Forbidden",
                                  statusfile.READ_ONLY_MESSAGE)
        method = environ["REQUEST_METHOD"]
        if ctx is not None and method in WRITE_METHODS and not (
                method in RELEASES and ctx.role in WRITER_ROLES):
            try:
                check_may_write(ctx.role, ctx.username, ctx.space.status)
            except Forbidden as exc:
                log.info("write refused: space=%s status=%s user=%s role=%s %s %s",
                         ctx.space.name, ctx.space.status, ctx.username, ctx.role, method,
                         environ.get("PATH_INFO"))
                return plain_response(start_response, "403 Forbidden", str(exc))
        return self.next_app(environ, start_response)


class ClientAbort(HumanDAVError):
    """The client stopped sending the body (went away, timed out, or broke
    the chunked framing): a 400, the client's fault, not the server's."""

    def __init__(self, detail: str) -> None:
        super().__init__(HTTP_BAD_REQUEST,
                         "La transferencia se interrumpió; no se guardó nada y la versión "
                         "anterior sigue intacta.", [("Connection", "close")])
        self.detail = detail


class _AbortAwareInput:
    """A PUT's ``wsgi.input``: a read that fails because of the client (a
    broken or unfinished chunked body, a dropped or silent connection) raises
    :class:`ClientAbort`, which keeps its 400 through WsgiDAV, instead of the
    server's ValueError or OSError that it would answer with a 500."""

    def __init__(self, raw: Any, environ: dict[str, Any]) -> None:
        self._raw = raw
        self._environ = environ

    def read(self, *args: Any) -> bytes:
        try:
            return bytes(self._raw.read(*args))
        except (ValueError, OSError) as exc:
            log.info("client abort: %s %s: %s", self._environ.get("REQUEST_METHOD"),
                     self._environ.get("PATH_INFO"), exc)
            raise ClientAbort(str(exc)) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


def guard_bodies(app: WSGIApp, max_xml_body: int) -> WSGIApp:
    """Refuse XML request bodies (PROPFIND, PROPPATCH, LOCK...) above
    ``max_xml_body`` with 413, and chunked ones with 411, before anything
    reads them (the body itself is read and checked after authentication, by
    :class:`davserver.xmlbody.XmlBodies`)."""

    def guarded(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "PUT" and "wsgi.input" in environ:
            environ["wsgi.input"] = _AbortAwareInput(environ["wsgi.input"], environ)
        if environ.get("REQUEST_METHOD") in XML_BODY_METHODS:
            raw = environ.get("CONTENT_LENGTH") or "0"
            try:
                length = int(raw)
            except ValueError:
                return plain_response(start_response, "400 Bad Request",
                                      "Content-Length no válido.", [("Connection", "close")])
            if length > max_xml_body:
                return plain_response(
                    start_response, "413 Request Entity Too Large",
                    "El cuerpo XML de la petición es demasiado grande.",
                    [("Connection", "close")])
            if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
                return plain_response(
                    start_response, "411 Length Required",
                    "Las peticiones XML deben indicar Content-Length.",
                    [("Connection", "close")])
        return app(environ, start_response)

    return guarded


_ENCODED_SEPARATORS = ("%2f", "%5c", "%00")


def _raw_path(environ: dict[str, Any]) -> str:
    """The request path as the client sent it (still percent-encoded)."""
    raw = environ.get("REQUEST_URI") or environ.get("RAW_URI") or ""
    if not raw:
        return quote(environ.get("PATH_INFO", ""), safe="/")
    if not raw.startswith("/"):  # absolute form: "PUT http://host/dav/... HTTP/1.1"
        return urlsplit(raw).path
    return raw.split("?", 1)[0]


def _not_canonical(raw_path: str) -> bool:
    """A ``.``/``..`` segment (plain or as ``%2e``), an encoded ``/``, ``\\`` or NUL,
    or bytes that are not UTF-8 (overlong forms like ``%c0%ae`` included: WsgiDAV
    cannot decode them and would fail without answering)."""
    lowered = raw_path.lower()
    try:
        unquote(raw_path, errors="strict")
    except UnicodeDecodeError:
        return True
    return (any(sep in lowered for sep in _ENCODED_SEPARATORS)
            or any(unquote(seg) in (".", "..") for seg in raw_path.split("/")))


def guard_paths(app: WSGIApp) -> WSGIApp:
    """Refuse with 400, before authentication, a path or a COPY/MOVE Destination
    that is not canonical as sent (see :func:`_not_canonical`), or a Destination
    with an encoded ``?``.

    WsgiDAV resolves dot segments before it picks the realm, so such a path would
    be answered under a space other than the one it names (or as the anonymous
    root); cheroot keeps ``%2F`` undecoded in PATH_INFO, so ``a%2Fb`` would be
    stored as a file literally named ``a%2Fb``; and WsgiDAV decodes a Destination
    before splitting off its query, so ``que%3F.txt`` would silently become (or
    overwrite) ``que``. No WebDAV client sends any of these for a valid name.
    """

    def guarded(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        raw = _raw_path(environ)
        dest = environ.get("HTTP_DESTINATION")
        if _not_canonical(raw) or (dest is not None and (
                _not_canonical(urlsplit(dest).path) or "%3f" in dest.lower())):
            log.warning("hostile path refused: %s %r destination=%r from %s",
                        environ.get("REQUEST_METHOD"), raw, dest,
                        environ.get("REMOTE_ADDR", "?"))
            return plain_response(
                start_response, "400 Bad Request",
                "Ruta no válida: no puede contener '.' ni '..' como carpeta, ni '/', '\\', "
                "'?' o caracteres nulos codificados.")
        return app(environ, start_response)

    return guarded


def _canonical(path: str) -> str:
    """A drive path as every comparison downstream needs it: each name in NFC
    (the spelling the space stores) and the space's segment in lower case
    (space names are), so that ``/dav/ACME/A%CC%83o.txt`` and
    ``/dav/acme/A%C3%B1o.txt`` are one path for locks, properties and the
    source-is-destination check."""
    parts = path.split("/")
    parts = [unicodedata.normalize("NFC", p) for p in parts]
    if len(parts) > 2 and parts[0] == "" and parts[1] == "dav":
        parts[2] = parts[2].lower()
    return "/".join(parts)


def canonical_paths(app: WSGIApp) -> WSGIApp:
    """Rewrite the request path and a COPY/MOVE Destination to their canonical
    spelling (:func:`_canonical`) before WsgiDAV sees them. WsgiDAV compares
    paths as strings: without this, a lock taken on one spelling would not
    cover a write to the other, and a MOVE of ``Año`` onto its NFD twin would
    look like two different items."""

    def canonical(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        try:  # a WSGI string holds the path's UTF-8 bytes as Latin-1
            text = path.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            text = None
        if text is not None:
            environ["PATH_INFO"] = _canonical(text).encode("utf-8").decode("latin-1")
        dest = environ.get("HTTP_DESTINATION")
        if dest:
            try:
                parts = urlsplit(dest)
                text = unquote(parts.path.encode("latin-1").decode("utf-8"), errors="strict")
            except (UnicodeEncodeError, UnicodeDecodeError, ValueError):
                text = None
            if text is not None:
                environ["HTTP_DESTINATION"] = parts._replace(
                    path=quote(_canonical(text), safe="/")).geturl()
        return app(environ, start_response)

    return canonical


#: What a person reads for each error WsgiDAV answers on its own (its pages are
#: English HTML with its version, the time and, on a 500, the exception).
SPANISH_ERRORS = {
    400: "La petición no es válida.",
    401: "Escriba el usuario y la contraseña de este espacio.",
    403: "No tiene permiso para esta operación.",
    404: "No existe.",
    405: "Esta operación no se permite aquí (por ejemplo, crear una carpeta que ya existe).",
    409: "La carpeta que debe contenerlo no existe: créela primero.",
    411: "La petición debe indicar su tamaño (Content-Length).",
    412: "El destino ya existe o cambió mientras tanto; no se sobrescribió.",
    413: "La petición es demasiado grande.",
    415: "Tipo de contenido no admitido.",
    416: "El rango pedido no existe en el archivo.",
    423: "Está bloqueado: alguien más lo tiene abierto.",
    424: "No se hizo porque otra parte de la operación falló.",
    502: "El destino está en otro servidor: solo se puede copiar o mover dentro del espacio.",
    503: "El servicio no está disponible en este momento; intente de nuevo en unos segundos.",
    507: "Espacio insuficiente.",
}
SERVER_ERROR = ("Ocurrió un error interno; no se hizo ningún cambio a medias. Intente de "
                "nuevo y, si se repite, avise a soporte.")


#: On every drive response: a stored HTML or SVG opened in a browser runs in a
#: sandbox (a unique origin, no scripts), never as the portal that shares the
#: address; and no content sniffing turns a text file into a page.
CONTENT_HEADERS = [("Content-Security-Policy", "sandbox; default-src 'none'; "
                    "img-src 'self'; style-src 'unsafe-inline'"),
                   ("X-Content-Type-Options", "nosniff")]


#: What a person reads for WsgiDAV's own success pages (a MKCOL, PUT, COPY or
#: MOVE that created something; its page names its version and the server's time).
SPANISH_SUCCESS = {200: "Listo.", 201: "Creado."}


def _wsgidav_page(method: str, code: int, headers: list[tuple[str, str]]) -> bool:
    """Whether a response is one of WsgiDAV's own HTML pages: any ``text/html``
    error, or ``text/html`` answering a method other than GET/HEAD (those serve
    a stored file, whose type is the file's own)."""
    html = next((v for k, v in headers if k.lower() == "content-type"),
                "").startswith("text/html")
    return html and (code >= 400 or method not in ("GET", "HEAD"))


def drive_responses(app: WSGIApp) -> WSGIApp:
    """Every drive response gets :data:`CONTENT_HEADERS`; WsgiDAV's own HTML
    pages (errors, and the "201 Created" pages of writes) become one Spanish
    sentence in plain text, same status and other headers: they named
    WsgiDAV's version and showed the server's clock. Our own refusals (plain
    text), WebDAV's XML bodies and stored files pass untouched."""

    def wrapped(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        replacement: list[bytes] = []
        method = environ.get("REQUEST_METHOD", "")

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            code = int(status[:3])
            if _wsgidav_page(method, code, headers):
                msg = SPANISH_ERRORS.get(code) or SPANISH_SUCCESS.get(code) or (
                    SERVER_ERROR if code >= 500 else
                    f"No se pudo completar la operación ({code})." if code >= 400 else
                    "Listo.")
                body = (msg + "\n").encode("utf-8")
                replacement.append(body)
                headers = [(k, v) for k, v in headers
                           if k.lower() not in ("content-type", "content-length")]
                headers += [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(body)))]
            return start_response(status, headers + CONTENT_HEADERS, exc_info)

        inner = app(environ, start)

        def body() -> Iterator[bytes]:
            # WsgiDAV starts the response on the first chunk: only that one is
            # looked at, the rest is handed through as it comes.
            try:
                chunks = iter(inner)
                first = next(chunks, None)
                if replacement:
                    if environ.get("REQUEST_METHOD") != "HEAD":
                        yield replacement[0]
                    return
                if first is not None:
                    yield first
                yield from chunks
            finally:
                close = getattr(inner, "close", None)
                if close is not None:
                    close()

        return body()

    return wrapped


def _lock_storage(settings: Settings, db: Database) -> Any:
    """The configured lock storage, with locks taken before today's limits
    shortened to them."""
    limits = LockLimits.of(settings)
    storage: Any
    if settings.locks.backend == "redis":
        storage = RedisLockStorage(settings.locks.redis_url, settings.redis_password,
                                   settings.locks.key_prefix, limits=limits)
    else:
        storage = SqlLockStorage(db, limits)
    try:
        storage.clamp()
    except Exception as exc:  # noqa: BLE001 - the storage may be down at start-up
        log.warning("could not shorten old locks to [locks] max_timeout: %s", exc)
    return storage


class _ExpectedRefusals(logging.Filter):
    """WsgiDAV logs a traceback for any error raised while it handles a PUT or
    MOVE, including the refusals we raise on purpose (507 quota, 403
    protection, 400 names). Those are logged once by the domain as a decision;
    drop WsgiDAV's traceback for them so real errors stand out."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        while exc is not None:
            if isinstance(exc, HumanDAVError) and exc.value < 500 or (
                    isinstance(exc, HumanDAVError) and exc.value in (503, 507)):
                return False
            exc = exc.__cause__ or exc.__context__
        return True


def make_app(settings: Settings, db: Database) -> WSGIApp:
    """Build the drive's WSGI application (a fresh instance each call)."""
    config: dict[str, Any] = {
        "provider_mapping": {
            "/dav": SpacesProvider(settings, db),
            "/": ProbeProvider(),
        },
        "http_authenticator": {
            "domain_controller": SpacesDomainController,
            "accept_basic": True,
            "accept_digest": False,
            "default_to_digest": False,
            "trusted_auth_header": None,
        },
        STATE_KEY: AuthState(settings, db),
        "property_manager": SqlPropertyManager(db, settings.properties),
        "lock_storage": _lock_storage(settings, db),
        "block_size": settings.server.block_size,
        "add_header_MS_Author_Via": True,
        "hotfixes": {
            "emulate_win32_lastmod": True,
            "re_encode_path_info": True,
            "unquote_path_info": False,
        },
        "middleware_stack": [ErrorPrinter, HTTPAuthenticator, RolePolicy, XmlBodies,
                             LockPolicy, LockBreaker, LockPlaceholders, PropPatchTransaction,
                             FastPropfind,
                             RequestResolver],
        LIMITS_KEY: LockLimits.of(settings),
        LockPlaceholders.CONFIG_KEY: (settings, db),
        XmlBodies.CONFIG_KEY: settings.server.buffered_body,
        "dir_browser": {"enable": False},
        "verbose": 2,
        "logging": {"enable": False, "enable_loggers": []},
        "mutable_live_props": [],
    }
    dav = WsgiDAVApp(config)
    install_batch_lock_manager(dav)
    # WsgiDAV's own logger does not propagate by default: its warnings and the
    # tracebacks behind any 500 must reach the service's log.
    wlog = logging.getLogger("wsgidav")
    wlog.propagate = True
    wlog.setLevel(logging.WARNING)
    if not any(isinstance(f, _ExpectedRefusals) for f in wlog.filters):
        for name in ("wsgidav", "wsgidav.request_server", "wsgidav.error_printer"):
            logging.getLogger(name).addFilter(_ExpectedRefusals())
    return drive_responses(guard_paths(canonical_paths(
        guard_bodies(dav, settings.server.max_xml_body))))
