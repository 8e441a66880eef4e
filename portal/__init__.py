"""The customer portal (Flask): sign-up, the free space, plans, cart, payment,
space administration and the operator's pages.

``create_app(settings, db)`` builds a fresh app; no state at import time.
Blueprints by audience: ``public`` (home, language), ``account`` (sign-up,
login, links), ``shop`` (plans, cart, checkout, the sandbox gateway and its
webhook), ``space`` (the space admin) and ``operator`` (site administrators).
Every rule about plans, prices and limits lives in :mod:`spaces`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import timedelta
from decimal import Decimal
from typing import Any

from flask import Flask, g, has_request_context, render_template, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_babel import Babel
from flask_wtf.csrf import CSRFError, CSRFProtect
from markupsafe import Markup
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from spaces.access.throttle import LoginThrottle
from spaces.commerce import rfc_claims
from spaces.commerce.payments import make_gateway
from spaces.core import formats
from spaces.core.db import Database, open_database
from spaces.core.errors import UsageUnavailable
from spaces.core.mail import Mailer
from spaces.core.settings import Settings

log = logging.getLogger(__name__)

LOCALES = ("es", "en")


def _select_locale() -> str:
    """Spanish unless the visitor chose English (the language links)."""
    lang = session.get("lang")
    return lang if lang in LOCALES else "es"


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with the cookie ``Secure`` whenever the
    request came over HTTPS: directly, or through a trusted proxy that said so
    (``X-Forwarded-Proto``, see ``[server] trusted_proxies``), even without a
    ``public_url`` to tell from."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]
                    or (has_request_context() and request.is_secure))


def _icon(name: str) -> Markup:
    """An icon of static/icons.svg (drawn, so it never needs an emoji font);
    decorative: the text beside it says what it is."""
    href = url_for("static", filename="icons.svg") + "#" + name
    return Markup('<svg class="icon {0}" aria-hidden="true" focusable="false">'
                  '<use href="{1}"></use></svg>').format(name, href)


def create_app(settings: Settings, db: Database | None = None) -> Flask:
    from portal.forms import PERIOD_SPANS
    from portal.web import PortalState

    app = Flask(__name__)
    app.session_interface = _SessionInterface()
    if db is None:
        db = open_database(settings)
    secure = settings.base_url().startswith("https://")
    app.config.update(
        # Derived from RESGUARDO_SECRET_KEY (random per process when unset: sessions
        # then end on restart, which is all the demo needs).
        SECRET_KEY=hmac.new(settings.secret_key, b"portal-session", hashlib.sha256).digest(),
        SESSION_COOKIE_NAME="resguardo_sesion",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        WTF_CSRF_TIME_LIMIT=None,  # tied to the session instead
        # No form is larger; and the server's front receives a body this size
        # whole before a worker takes the request (see resguardo.front), so a
        # client that trickles a form never holds a worker. Uploads read their
        # raw body themselves, after checking who sends it.
        MAX_CONTENT_LENGTH=settings.server.buffered_body,
        BABEL_DEFAULT_LOCALE="es",
        RESGUARDO_SETTINGS=settings,
    )
    if "RESGUARDO_SECRET_KEY" not in __import__("os").environ:
        log.warning("RESGUARDO_SECRET_KEY is not set: portal sessions use a random key for "
                    "this process only (everyone is logged out on restart)")
    if not settings.server.public_url:
        log.warning("[server] public_url is not set: e-mailed links use this machine's "
                    "address; set it to the URL customers use")
    app.extensions["resguardo"] = PortalState(
        settings=settings, db=db, mailer=Mailer(settings), gateway=make_gateway(settings),
        throttle=LoginThrottle.from_settings(settings, db),
    )
    @app.before_request
    def _document_forms() -> None:
        # Before the CSRF hook reads the form: the one form that carries a document
        # (the Constancia de Situación Fiscal) may be larger, for a logged-in account.
        if request.endpoint == "account.rfc_submit" and request.method == "POST":
            from portal.web import current_account

            if current_account() is not None:
                request.max_content_length = rfc_claims.MAX_DOCUMENT_BYTES + 16 * 1024

    csrf = CSRFProtect(app)
    Babel(app, locale_selector=_select_locale)

    from portal import account, audit, cfdi, drive, invoices, operator, public, shop, space

    csrf.exempt(shop.webhook)  # signed by the gateway instead

    app.register_blueprint(public.bp)
    app.register_blueprint(account.bp)
    app.register_blueprint(shop.bp)
    app.register_blueprint(space.bp)
    app.register_blueprint(operator.bp)
    app.register_blueprint(invoices.bp)
    app.register_blueprint(cfdi.bp)
    app.register_blueprint(audit.bp)
    drive.register(app, csrf)  # the web drive's two blueprints

    @app.context_processor
    def _globals() -> dict[str, Any]:
        from portal.web import current_account, current_member

        lang = _select_locale()
        zone = settings.portal.zone()
        return {"current_account": current_account(), "current_member": current_member(),
                # One formatter (spaces.core.formats), the page's language: es-MX or English.
                "mxn": lambda v: formats.mxn(v, lang),
                "fmt_bytes": lambda n: formats.size(n, lang),
                "fmt_free": lambda n: formats.free_bytes(n, lang),
                "pct": lambda d: formats.rate(d, lang),
                "pct1": lambda d: formats.percent(d, lang),
                "num": lambda v: formats.number(v, lang),
                "fecha": lambda d: formats.day(d, lang, zone),
                "fechahora": lambda dt, seconds=False: formats.moment(dt, lang, zone,
                                                                     seconds=seconds),
                "locale": lang, "html_lang": formats.HTML_LANG[lang],
                "contact": settings.portal,
                "iva_percent": Decimal(settings.billing.iva_rate) * 100,
                "period_spans": PERIOD_SPANS, "icon": _icon}

    @app.after_request
    def _headers(resp: Any) -> Any:
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        resp.headers.setdefault("Content-Security-Policy",
                                # Strict: scripts and styles only from files of
                                # this site, never inline.
                                "default-src 'self'; form-action 'self'; "
                                "frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
        if request.endpoint and not request.endpoint.startswith("static"):
            resp.headers.setdefault("Cache-Control", "no-store")
        return resp

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError) -> Any:
        return render_template("error.html", code=400, message="csrf"), 400

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        """Every HTTP error on the portal's own Spanish (or English) page, with the
        view's own sentence when it gave one (abort(403, "...")); a 405 keeps its
        Allow header, a 429 its Retry-After and a 416 its Content-Range."""
        code = exc.code or 500
        own = exc.description if exc.description != type(exc).description else None
        resp = app.make_response((render_template("error.html", code=code, detail=own), code))
        for name, value in exc.get_headers():
            if name.lower() in ("allow", "retry-after", "www-authenticate", "content-range"):
                resp.headers[name] = value
        return resp

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    @app.errorhandler(PoolTimeout)
    @app.errorhandler(UsageUnavailable)
    def _unavailable(exc: Exception) -> Any:
        # Fail closed like the drive: the database is locked, down or out of
        # connections; nothing was changed and the client may try again.
        log.warning("portal: database unavailable on %s %s: %s", request.method,
                    request.path, type(exc).__name__)
        g.pop("account", None)
        g.pop("member", None)
        try:
            body = render_template("error.html", code=503)
        except Exception:  # noqa: BLE001 - the page itself may need the database
            body = ("<!doctype html><html lang=\"es\"><meta charset=\"utf-8\"><title>Error"
                    "</title><h1>Algo salió mal</h1><p>No pudimos completar la operación; no "
                    "se cambió nada. Intente de nuevo en unos minutos.</p></html>")
        return body, 503, {"Retry-After": "5"}

    @app.errorhandler(500)
    def _server_error(exc: Any) -> Any:
        log.exception("portal error on %s %s", request.method, request.path)
        return render_template("error.html", code=500), 500

    @app.teardown_request
    def _teardown(exc: BaseException | None) -> None:
        g.pop("account", None)
        g.pop("member", None)

    return app
