"""Slowing down repeated bad passwords, on every door at once.

A pause belongs to a *subject*: a drive user (its space and username, spelt
the way every door looks them up: :func:`spaces.access.service.login_name`), a portal
account, a share link, or a client address. The drive's Basic auth,
``/unidad/entrar``, ``/cuenta/entrar-unidad``, ``/cuenta/entrar`` and share-link
passwords all count failures against the same subjects and all honour the same
pauses. The record lives in the database (``login_failures``), so the pause
also holds across processes (the drive and the portal run apart with
``--only``) and across nodes that share the database.

After ``limit`` failures within ``window`` seconds a subject is paused; each
further failure doubles the pause, up to ``max_block`` seconds: short enough
that the real owner is never locked out for long, long enough that guessing is
hopeless. A success clears the subject. Every method takes ``now`` (seconds
since the epoch; the nodes' clocks are the one shared time) so tests can
inject the clock. Only a digest of the subject is stored.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass

from sqlalchemy import Float, bindparam, delete, func, select, text, update
from sqlalchemy.engine import Connection

from spaces.core.db import Database
from spaces.core.models import LoginFailure
from spaces.core.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rule:
    """``limit`` failures within ``window`` seconds start a pause of ``first``
    seconds that doubles with each further failure, up to ``max_block`` seconds."""

    limit: int
    window: float
    max_block: float
    first: float = 1.0

    def pause(self, count: int) -> float:
        """Seconds paused after the ``count``-th failure in the window (0: none)."""
        over = count - self.limit
        return 0.0 if over < 0 else min(self.first * 2.0 ** min(over, 62), self.max_block)


@dataclass(frozen=True)
class Subject:
    """What a pause is kept for: its ``kind`` picks the rule."""

    kind: str
    name: str

    @property
    def digest(self) -> str:
        return _digest(self.kind, self.name)


@functools.lru_cache(maxsize=4096)
def _digest(kind: str, name: str) -> str:
    # Cached: the drive asks for its user's and address's on every request.
    return hashlib.sha256(f"{kind}\x00{name}".encode("utf-8", "surrogatepass")).hexdigest()


@functools.lru_cache(maxsize=4096)
def member(space: str, username: str) -> Subject:
    """A drive user, whichever door and spelling (``" ACME "``, ``"dominio\\\\Ana"``)."""
    from spaces.access.service import login_name

    return Subject("member", json.dumps([login_name(space), login_name(username)]))


def account(key: str) -> Subject:
    """A portal account: ``key`` is its id when the login names one, else the
    login as typed, normalised (see :func:`spaces.commerce.accounts.login_subject`)."""
    return Subject("account", key)


def share(link_id: int) -> Subject:
    return Subject("share", str(link_id))


def address(addr: str | None) -> Subject:
    """A client address (after the trusted-proxy rewrite)."""
    return Subject("address", (addr or "?").strip().lower())


_FAIL = text(
    "INSERT INTO login_failures (subject, count, first_at, blocked_until) "
    "VALUES (:subject, 1, :now, 0) "
    "ON CONFLICT (subject) DO UPDATE SET "
    "count = CASE WHEN :now - login_failures.first_at > :window THEN 1 "
    "ELSE login_failures.count + 1 END, "
    "first_at = CASE WHEN :now - login_failures.first_at > :window THEN :now "
    "ELSE login_failures.first_at END "
    "RETURNING count")
#: Every drive request asks (for its user and its address): built once, run through
#: the DB-API cursor like the credential check (Database.first_row).
_BLOCKED = (select(func.count()).select_from(LoginFailure)
            .where(LoginFailure.subject.in_([bindparam("a"), bindparam("b")]),
                   LoginFailure.blocked_until > bindparam("now", type_=Float)))


class LoginThrottle:
    """The pauses of every door (see the module docstring); share one per process."""

    def __init__(self, db: Database, rules: dict[str, Rule]) -> None:
        self.db = db
        self.rules = rules
        self._purged = 0.0
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, db: Database) -> LoginThrottle:
        """Drive users and addresses by ``[auth]`` (an address allows 4x the
        failures of one user), accounts and share links by ``[portal]``."""
        a, p = settings.auth, settings.portal
        users = Rule(a.max_failures, a.failure_window_seconds, a.max_block_seconds,
                     a.block_seconds)
        accounts = Rule(p.max_login_failures, p.login_window_seconds,
                        p.max_login_block_seconds, p.login_block_seconds)
        return cls(db, {"member": users, "share": accounts, "account": accounts,
                        "address": Rule(4 * a.max_failures, a.failure_window_seconds,
                                        a.max_block_seconds, a.block_seconds)})

    def blocked(self, first: Subject, second: Subject | None = None, *,
                now: float | None = None) -> bool:
        """Whether ``first`` or ``second`` (a user and its address) is paused at
        ``now``: one query."""
        now = time.time() if now is None else now
        row = self.db.first_row(_BLOCKED, {"a": first.digest, "b": (second or first).digest,
                                           "now": now})
        return bool(row and row[0])

    def failure(self, *subjects: Subject, now: float | None = None) -> None:
        """Count a failed password against each of ``subjects`` (atomically, so
        simultaneous failures on several nodes are all counted)."""
        now = time.time() if now is None else now
        with self.db.engine.begin() as c:
            for s in subjects:
                rule = self.rules[s.kind]
                count = int(c.execute(_FAIL, {"subject": s.digest, "now": now,
                                              "window": rule.window}).scalar_one())
                pause = rule.pause(count)
                if pause:
                    c.execute(update(LoginFailure).where(LoginFailure.subject == s.digest)
                              .values(blocked_until=func.max(LoginFailure.blocked_until,
                                                             now + pause)
                                      if self.db.is_sqlite else
                                      func.greatest(LoginFailure.blocked_until, now + pause)))
                    log.info("login paused: kind=%s failures=%d for %.0f s", s.kind, count,
                             pause)
            self._maybe_purge(c, now)

    def success(self, *subjects: Subject) -> None:
        """A right password: forget the failures of ``subjects``."""
        with self.db.engine.begin() as c:
            c.execute(delete(LoginFailure).where(
                LoginFailure.subject.in_([s.digest for s in subjects])))

    def _maybe_purge(self, c: Connection, now: float) -> None:
        """At most once per window: drop records whose window and pause are over
        (a spray of made-up names must not grow the table for ever)."""
        window = max(r.window for r in self.rules.values())
        with self._lock:
            if now - self._purged < window:
                return
            self._purged = now
        c.execute(delete(LoginFailure).where(LoginFailure.first_at < now - window,
                                             LoginFailure.blocked_until < now))
