"""What every blueprint shares: the portal's state, who is logged in, links."""

from __future__ import annotations

import functools
import hmac
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from flask import abort, current_app, flash, g, redirect, request, session, url_for

from spaces.access import service
from spaces.access.throttle import LoginThrottle
from spaces.commerce import accounts, notices
from spaces.commerce.payments import PaymentGateway
from spaces.core import audit
from spaces.core.db import Database
from spaces.core.errors import SpaceError
from spaces.core.mail import Mailer
from spaces.core.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class PortalState:
    settings: Settings
    db: Database
    mailer: Mailer
    gateway: PaymentGateway
    #: Every login door's pause, shared with the drive through the database.
    throttle: LoginThrottle


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
    """The account logged in to this session, re-read on every request; None (and
    the session ended) if it is gone or the session's version is not the
    account's any more (a logout elsewhere, a password change or reset)."""
    if "account" not in g:
        g.account = None
        account_id = session.get("account_id")
        if account_id is not None:
            try:
                a = accounts.get_account(state().db, int(account_id))
            except (SpaceError, ValueError, TypeError):
                a = None
            if a is None or not _same_version(session.get("account_v"), a.session_version):
                session.clear()
            else:
                g.account = a
    return g.account


@dataclass(frozen=True)
class MemberSession:
    """A drive user logged in to the portal (web drive, or a space admin without
    an account), as the database says right now."""

    id: int
    space: service.SpaceInfo
    username: str
    role: str

    @property
    def space_name(self) -> str:
        return self.space.name


def current_member() -> MemberSession | None:
    """The drive user logged in to this session, re-read from the database on
    every request (one query, as the drive does): None, and the member part of
    the session dropped, when the user was removed (even if added again), its
    password changed, it logged out elsewhere, it is beyond its plan's users or
    its space is suspended."""
    if "member" not in g:
        g.member = None
        m = session.get("member")
        if m:
            try:
                member_id, space, username, version = int(m[0]), str(m[1]), str(m[2]), m[3]
                cred = service.find_credential(state().db, space, username)
            except (IndexError, ValueError, TypeError):
                cred = None
            if (cred is None or cred.member_id != member_id
                    or not _same_version(version, cred.session_version)
                    or not cred.within_user_limit or cred.space.status == "suspended"):
                session.pop("member", None)
            else:
                g.member = MemberSession(cred.member_id, cred.space, cred.username, cred.role)
    return g.member


def _same_version(held: object, current: str) -> bool:
    return isinstance(held, str) and bool(current) and hmac.compare_digest(held, current)


def audit_actor() -> audit.Actor:
    """Who is acting in this request, for the audit log: ``operator:NAME`` or
    ``account:NAME`` for a portal account, the username of a drive user logged in
    to the portal; the client's address (after trusted proxies)."""
    a = current_account()
    m = current_member()
    if a is not None:
        who = f"{'operator' if a.is_operator else 'account'}:{a.username}"
    elif m is not None:
        who = m.username
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


def _owns(account_id: int, space_name: str) -> bool:
    return any(sp.name == space_name for sp in accounts.owned_spaces(state().db, account_id))


def log_in(account: accounts.AccountInfo) -> None:
    """Start the account's session. A new session on login (no fixation), except
    that a web-drive login of one of the account's own spaces stays: the owner
    who is also a member uses both at once, and logging in to one never logs
    out of the other. A drive login of someone else's space is dropped."""
    member = session.get("member") if current_member() is not None else None
    keep = member if member and _owns(account.id, str(member[1])) else None
    session.clear()
    if keep:
        session["member"] = keep
    session["account_id"] = account.id
    session["account_v"] = account.session_version
    session.permanent = True
    g.pop("account", None)


def log_in_member(cred: service.Credential) -> None:
    """Start a portal session for a drive user (web drive or space admin); the
    account session stays when the space is that account's own (see log_in)."""
    a = current_account()
    keep = (a.id, a.session_version) if a is not None and _owns(a.id, cred.space.name) \
        else None
    session.clear()
    if keep:
        session["account_id"], session["account_v"] = keep
    session["member"] = [cred.member_id, cred.space.name, cred.username,
                         cred.session_version]
    session.permanent = True
    g.pop("member", None)
    g.pop("account", None)


def log_out() -> None:
    """End this session and every copy of it: the account's (or drive user's)
    session version is renewed, so a cookie taken before cannot come back."""
    a = current_account()
    m = current_member()
    if a is not None:
        accounts.end_account_sessions(state().db, a.id)
    if m is not None:
        accounts.end_member_sessions(state().db, m.id)
    session.clear()
    g.pop("account", None)
    g.pop("member", None)


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
