"""What every blueprint shares: the portal's state, who is logged in, links."""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from flask import abort, current_app, flash, g, redirect, request, session, url_for

from spaces import accounts, audit, notices
from spaces.db import Database
from spaces.mail import Mailer
from spaces.payments import PaymentGateway
from spaces.settings import Settings
from spaces.throttle import Throttle

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class PortalState:
    settings: Settings
    db: Database
    mailer: Mailer
    gateway: PaymentGateway
    logins: Throttle
    login_addresses: Throttle


def state() -> PortalState:
    st: PortalState = current_app.extensions["resguardo"]
    return st


_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def links() -> notices.Links:
    """Absolute links for e-mails: the configured ``[server] public_url``.

    Without one (a demo on this machine) the request's own address is used, but
    only if its Host is this machine or the configured listen address: a forged
    Host header must never put an attacker's host into a password-reset link.
    """
    settings = state().settings
    if settings.server.public_url:
        return notices.Links(settings.server.public_url.rstrip("/"))
    hostname = request.host.rsplit(":", 1)[0] if not request.host.endswith("]") \
        else request.host
    if hostname in _LOCAL_HOSTS or hostname == settings.server.host:
        return notices.Links(request.host_url.rstrip("/"))
    return notices.Links(settings.base_url())


def current_account() -> accounts.AccountInfo | None:
    if "account" not in g:
        g.account = None
        account_id = session.get("account_id")
        if account_id is not None:
            try:
                g.account = accounts.get_account(state().db, int(account_id))
            except Exception:  # noqa: BLE001 - a stale session is just a logout
                session.clear()
    return g.account


def current_member() -> tuple[int, str, str] | None:
    """(member id, space, username) of a drive user logged in to the portal."""
    m = session.get("member")
    return (int(m[0]), str(m[1]), str(m[2])) if m else None


def audit_actor() -> audit.Actor:
    """Who is acting in this request, for the audit log: ``operator:NAME`` or
    ``account:NAME`` for a portal account, the username of a drive user logged in
    to the portal; the client's address (after trusted proxies)."""
    a = current_account()
    m = current_member()
    if a is not None:
        who = f"{'operator' if a.is_operator else 'account'}:{a.username}"
    elif m is not None:
        who = m[2]
    else:
        who = None
    return audit.Actor(who, request.remote_addr, "portal")


def login_required(view: F) -> F:
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if current_account() is None:
            flash(_t("Entre a su cuenta para continuar."), "info")
            return redirect(url_for("account.login", next=request.path))
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def operator_required(view: F) -> F:
    """Operator pages answer 404 to everyone else: they do not exist for customers."""
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        a = current_account()
        if a is None or not a.is_operator:
            abort(404)
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def log_in(account: accounts.AccountInfo) -> None:
    session.clear()  # a new session on login: no fixation
    session["account_id"] = account.id
    session.permanent = True


def _t(text: str) -> str:
    from flask_babel import gettext

    return gettext(text)


def safe_next(target: str | None, default: str) -> str:
    """Where to send the browser after a login or a language switch: ``target``
    if it is a path of this site, else ``default``. The one check for every
    redirect that a request chooses (never an open redirect, never a 500).

    Browsers forgive a lot on the way from a ``Location`` header to a URL: they
    drop tabs and newlines anywhere, trim control characters and spaces, and
    read a backslash as a slash, so "/<tab>/evil.example" and "/<backslash>evil.example"
    both mean "//evil.example", another host. So a target must be printable
    (no control, format or space character at all, no backslash), start with
    exactly one slash and have neither scheme nor host; non-ASCII letters are
    percent-encoded.
    """
    if not target or not target.startswith("/") or target.startswith("//"):
        return default
    if any(ch == "\\" or ch.isspace() or unicodedata.category(ch)[0] in "CZ"
           for ch in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return quote(target, safe="/?&=#%;:@+,$!*'()~-._")
