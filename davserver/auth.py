"""HTTP Basic authentication against a space's members.

The realm is the space named in the URL (``/dav/<space>/``): a user is checked
only against the members of that space, so credentials of one space never open
another, and a wrong space, a wrong user and a wrong password all look the
same (401, same argon2 cost). Verified credentials are cached briefly under a
keyed hash and re-validated against the stored hash on every request, so a
password change or a removal takes effect at once, even from another process.
Repeated bad passwords are slowed per user and per address.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from wsgidav.dc.base_dc import BaseDomainController

from davserver.provider import SpacesProvider
from davserver.request import CTX_KEY, HumanDAVError, RequestContext
from spaces.access import throttle
from spaces.access.files import space_files
from spaces.access.service import find_credential, login_name
from spaces.access.throttle import LoginThrottle
from spaces.core import metrics
from spaces.core.audit import Actor
from spaces.core.db import Database
from spaces.core.passwords import verify_password
from spaces.core.settings import Settings

log = logging.getLogger(__name__)

STATE_KEY = "resguardo"


class CredentialCache:
    """Maps HMAC(secret, space, user, password) to the password hash it was
    verified against, for ``ttl`` seconds."""

    def __init__(self, secret: bytes, ttl: float) -> None:
        self.secret, self.ttl = secret, ttl
        self._lock = threading.Lock()
        self._data: dict[bytes, tuple[float, str]] = {}
        #: key -> [lock, waiters]: the check in flight for those credentials.
        self._flights: dict[bytes, list[Any]] = {}

    def key(self, space: str, user: str, password: str) -> bytes:
        msg = "\x00".join((space, user, password)).encode("utf-8", "surrogatepass")
        return hmac.new(self.secret, msg, hashlib.sha256).digest()

    def matches(self, key: bytes, password_hash: str) -> bool:
        with self._lock:
            hit = self._data.get(key)
        return bool(hit and hit[0] > time.monotonic() and
                    hmac.compare_digest(hit[1], password_hash))

    def verified(self, key: bytes, password_hash: str, check: Callable[[], bool]) -> bool:
        """Whether the password behind ``key`` opens ``password_hash``: from the
        cache, or by ``check()`` (argon2). Requests that arrive together with the
        same credentials (Explorer opens several connections at once) wait for
        one check instead of each paying for their own."""
        if self.matches(key, password_hash):
            return True
        with self._lock:
            flight = self._flights.setdefault(key, [threading.Lock(), 0])
            flight[1] += 1
        try:
            with flight[0]:
                if self.matches(key, password_hash):
                    return True
                ok = check()
                if ok:
                    self.store(key, password_hash)
                return ok
        finally:
            with self._lock:
                flight[1] -= 1
                if flight[1] == 0:
                    del self._flights[key]

    def store(self, key: bytes, password_hash: str) -> None:
        if self.ttl <= 0:
            return
        now = time.monotonic()
        with self._lock:
            if len(self._data) > 10_000:
                self._data = {k: v for k, v in self._data.items() if v[0] > now}
            self._data[key] = (now + self.ttl, password_hash)


class AuthState:
    """What the domain controller needs; one per drive application."""

    def __init__(self, settings: Settings, db: Database) -> None:
        a = settings.auth
        self.settings = settings
        self.db = db
        self.cache = CredentialCache(settings.secret_key, a.cache_seconds)
        #: Shared with every other door, process and node through the database.
        self.throttle = LoginThrottle.from_settings(settings, db)


def realm_of(path_info: str) -> str:
    """The realm of a request: its space's name ('' outside any space)."""
    return path_info.lstrip("/").partition("/")[0].lower()


class SpacesDomainController(BaseDomainController):
    """WsgiDAV domain controller: Basic only, one realm per space."""

    def __init__(self, wsgidav_app: Any, config: dict[str, Any]) -> None:
        super().__init__(wsgidav_app, config)
        self.state: AuthState = config[STATE_KEY]

    def get_domain_realm(self, path_info: str, environ: dict[str, Any] | None) -> str:
        if environ is not None and not isinstance(environ.get("wsgidav.provider"),
                                                  SpacesProvider):
            return ""  # the probe provider at "/" (no space)
        return realm_of(path_info)

    def require_authentication(self, realm: str, environ: dict[str, Any] | None) -> bool:
        return bool(realm)

    def supports_http_digest_auth(self) -> bool:
        return False

    def basic_auth_user(
        self, realm: str, user_name: str, password: str, environ: dict[str, Any]
    ) -> bool:
        st = self.state
        # Windows sends "DOMAIN\\user": every door spells a name the same way.
        user = login_name(user_name)
        addr = environ.get("REMOTE_ADDR", "?")
        subjects = (throttle.member(realm, user), throttle.address(addr))
        try:
            # The pause of this user or address, from any door: read with the
            # credential (an unknown user costs a query of its own).
            cred = find_credential(st.db, realm, user,
                                   pauses=(subjects[0].digest, subjects[1].digest))
            paused = cred.paused if cred is not None else st.throttle.blocked(*subjects)
        except SQLAlchemyError as exc:
            # Not a wrong password: a 401 would make Windows ask for it again.
            log.error("auth unavailable: %s", exc)
            metrics.AUTH_FAILURES.labels("unavailable").inc()
            raise HumanDAVError(
                503, "El servicio no puede verificar su acceso en este momento; intente de "
                "nuevo en unos segundos.", [("Retry-After", "5")]) from None
        if paused:
            log.warning("auth throttled: space=%s user=%s addr=%s", realm, user, addr)
            metrics.AUTH_FAILURES.labels("throttled").inc()
            return False

        checked: list[bool] = []  # whether argon2 ran for this request

        def check(stored: str | None) -> bool:
            metrics.PASSWORD_CHECKS.inc()
            checked.append(True)
            return verify_password(password, stored)

        if cred is None:
            ok = check(None)  # the same cost as a wrong password
        else:
            stored = cred.password_hash
            ok = st.cache.verified(st.cache.key(realm, user, password), stored,
                                   lambda: check(stored))
        if not ok or cred is None:
            _count_failure(st.throttle, subjects)
            log.info("auth failed: space=%s user=%s addr=%s", realm, user, addr)
            metrics.AUTH_FAILURES.labels("password").inc()
            return False
        if not cred.within_user_limit:
            log.info("auth refused (user limit): space=%s user=%s", realm, user)
            metrics.AUTH_FAILURES.labels("user_limit").inc()
            return False
        if cred.space.status == "suspended":
            log.info("auth refused (suspended): space=%s user=%s", realm, user)
            metrics.AUTH_FAILURES.labels("suspended").inc()
            return False
        if checked:  # a password typed again: its earlier failures are forgotten
            _count_success(st.throttle, subjects[0])
        environ[CTX_KEY] = RequestContext(
            space=cred.space, username=cred.username, role=cred.role,
            files=space_files(st.settings, st.db, cred.space.id, cred.space.name,
                               actor=Actor(cred.username, environ.get("REMOTE_ADDR"), "dav"),
                               max_depth=cred.space.max_depth),
        )
        environ["wsgidav.auth.user_name"] = cred.username
        environ["wsgidav.auth.roles"] = (cred.role,)
        return True


def _count_failure(t: LoginThrottle, subjects: tuple[throttle.Subject, ...]) -> None:
    """Count a bad password; the answer is a 401 either way, so a database that
    fails just now costs the count, not the answer."""
    try:
        t.failure(*subjects)
    except SQLAlchemyError as exc:
        log.error("auth: failure not counted: %s", exc.__class__.__name__)


def _count_success(t: LoginThrottle, subject: throttle.Subject) -> None:
    try:
        t.success(subject)
    except SQLAlchemyError as exc:
        log.error("auth: success not recorded: %s", exc.__class__.__name__)
