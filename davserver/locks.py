"""The drive's WebDAV locks above their storage (:mod:`davserver.lockstorage`):
the lock manager that reads a path's locks in one query
(:class:`BatchLockManager`), and the middlewares around WsgiDAV's LOCK and
UNLOCK:

- :class:`LockPolicy`: what may be locked, and the lock counts, decided
  before WsgiDAV takes a lock;
- :class:`LockBreaker`: a space admin may remove another member's lock (the
  "stolen lock" of the audit log), which WsgiDAV alone refuses to anyone but
  the holder;
- :class:`LockPlaceholders`: the empty file a LOCK creates on a new name goes
  away when no write follows (on the request, and by sweeps on its own thread).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, unquote

from wsgidav import util
from wsgidav.dav_error import DAVErrorCondition, PRECONDITION_CODE_LockConflict
from wsgidav.lock_man.lock_manager import LockManager
from wsgidav.lock_man.lock_storage import normalize_lock_root
from wsgidav.mw.base_mw import BaseMiddleware

from davserver.request import (
    HumanDAVError,
    plain_refusal,
    request_context,
    split_path,
)
from spaces.core import audit
from spaces.core.db import Database
from spaces.core.errors import SpaceError
from spaces.core.settings import Settings
from spaces.files import locks as domain

log = logging.getLogger(__name__)


class BatchLockManager(LockManager):
    """WsgiDAV's LockManager, except that the locks of a path and all its
    ancestors are read in one query instead of one per level (a write five
    folders deep asked six times, several times per request). Same decisions,
    from one consistent snapshot. Storages without ``get_lock_lists`` (Redis)
    get WsgiDAV's own walk."""

    def _chain(self, url: str) -> list[str]:
        chain = []
        u: str | None = url
        while u:
            chain.append(u)
            u = util.get_uri_parent(u)
        return chain

    def _get_write_conflicts(self, url: str, depth: str, token_list: list[str],
                             principal: str) -> DAVErrorCondition:
        if not hasattr(self.storage, "get_lock_lists"):
            return super()._get_write_conflicts(url, depth, token_list, principal)
        errcond = DAVErrorCondition(PRECONDITION_CODE_LockConflict)
        chain = self._chain(url)
        lists = self.storage.get_lock_lists(chain)
        for u in chain:
            for lock in lists[u]:
                if u != url and lock["depth"] != "infinity":
                    continue
                if principal == lock["principal"] and lock["token"] in token_list:
                    continue
                errcond.add_href(lock["root"])
        if depth == "infinity":
            for lock in self.storage.get_lock_list(url, include_root=False,
                                                   include_children=True, token_only=False):
                errcond.add_href(lock["root"])
        return errcond

    def get_indirect_url_lock_list(self, url: str, *,
                                   principal: str | None = None) -> list[dict[str, Any]]:
        if not hasattr(self.storage, "get_lock_lists"):
            return list(super().get_indirect_url_lock_list(url, principal=principal))
        url = normalize_lock_root(url)
        chain = self._chain(url)
        lists = self.storage.get_lock_lists(chain)
        out = []
        for u in chain:
            for lock in lists[u]:
                if u != url and lock["depth"] != "infinity":
                    continue
                if principal is None or principal == lock["principal"]:
                    out.append(lock)
        return out


def install_batch_lock_manager(dav: Any) -> None:
    """Give a WsgiDAVApp (and its providers) a BatchLockManager on the same storage."""
    if dav.lock_manager is None or not hasattr(dav.lock_manager.storage, "get_lock_lists"):
        return
    lm = BatchLockManager(dav.lock_manager.storage)
    dav.lock_manager = lm
    for provider in dav.provider_map.values():
        provider.set_lock_manager(lm)


# -- what may be locked -----------------------------------------------------------------

class LockPolicy(BaseMiddleware):
    """Before WsgiDAV takes a new lock (a LOCK with a body; a refresh has none):
    nobody locks the space's root, only a space admin locks a folder, the
    body (``<owner>`` is nearly all of it) stays within ``max_owner_bytes``,
    and the user and the space are below their lock counts (see
    :mod:`spaces.files.locks`). Decided here, before WsgiDAV creates the empty file
    a LOCK of a new name makes; the storage counts again, exactly, as it
    inserts."""

    #: What a LOCK body holds besides its owner (lockinfo, scope, type).
    BODY_SLACK = 1024

    def __init__(self, wsgidav_app: Any, next_app: Callable[..., Any],
                 config: dict[str, Any]) -> None:
        super().__init__(wsgidav_app, next_app, config)
        self.limits: domain.LockLimits = config[LIMITS_KEY]
        self.settings: Settings = config["resguardo"].settings
        self.db: Database = config["resguardo"].db

    def is_disabled(self) -> bool:
        return False

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:

        ctx = request_context(environ)
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if environ.get("REQUEST_METHOD") != "LOCK" or ctx is None or length <= 0:
            return self.next_app(environ, start_response)
        rel = split_path(environ.get("PATH_INFO", ""))[1]
        try:
            if length > self.limits.max_owner_bytes + self.BODY_SLACK:
                self.limits.check_owner(b"x" * (length - self.BODY_SLACK))
            try:
                target = ctx.files.resolve(rel)
                e = ctx.files.entry(target)
            except SpaceError:
                target, e = None, None  # WsgiDAV gives the path its own answer
            if target is not None and e is not None:
                ctx.files.check_depth(target)  # made before these limits: too long to key
            domain.check_lockable(is_space_root=rel.strip("/") == "",
                                  is_folder=e is not None and e.is_dir, role=ctx.role)
            space_count, user_count = self._counts(ctx.space.name, ctx.username)
            self.limits.check_counts(space_count + 1, user_count + 1)
        except SpaceError as exc:
            log.info("lock refused: space=%s user=%s path=%s: %s", ctx.space.name,
                     ctx.username, rel, exc)
            return plain_refusal(start_response, exc)
        return self.next_app(environ, start_response)

    def _counts(self, space: str, principal: str) -> tuple[int, int]:
        locks = domain.space_locks(self.settings, self.db, space)
        return len(locks), sum(1 for lk in locks if lk.principal == principal)


#: The WsgiDAV config key holding the :class:`spaces.files.locks.LockLimits`.
LIMITS_KEY = "resguardo.lock_limits"


# -- breaking another member's lock ---------------------------------------------------

class LockBreaker(BaseMiddleware):
    """UNLOCK of a lock held by *another* member of the space, by a space admin:
    the lock is removed (204) and recorded as ``lock_stolen``.

    What "lock stolen" means here: a live lock of member A removed by member B.
    Only a space admin can do it (WsgiDAV answers 403 to anyone else who is not
    the holder, editors included), presenting the lock's token as any UNLOCK
    does (it is in the resource's ``lockdiscovery``). The typical case: Office
    crashed on A's computer and the document stays locked for everyone.

    A lock that merely *expired* and is then taken by someone else is not
    recorded: its holder's lease ran out, WsgiDAV treats it as gone, and Windows
    re-locks on every save, so each laptop that went to sleep would be a false
    alarm; the overwrite that follows is recorded by the file operation itself.

    Fail closed: the record is written first; if it cannot be, the lock stays
    and the admin gets 503.
    """

    def __init__(self, wsgidav_app: Any, next_app: Callable[..., Any],
                 config: dict[str, Any]) -> None:
        super().__init__(wsgidav_app, next_app, config)

    def is_disabled(self) -> bool:
        return False

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:

        ctx = request_context(environ)
        if (environ.get("REQUEST_METHOD") != "UNLOCK" or ctx is None or ctx.role != "admin"
                or "HTTP_LOCK_TOKEN" not in environ):
            return self.next_app(environ, start_response)
        token = environ["HTTP_LOCK_TOKEN"].strip().strip("<>")
        lm = getattr(self.wsgidav_app, "lock_manager", None)
        lock = lm.get_lock(token) if lm is not None else None
        if lm is None or lock is None or lock.get("principal") == ctx.username:
            return self.next_app(environ, start_response)  # WsgiDAV's own answer
        # WsgiDAV has moved the share ("/dav") from PATH_INFO to SCRIPT_NAME; lock
        # roots are full (quoted) URL paths.
        share = environ.get("SCRIPT_NAME", "").rstrip("/")
        base = f"{share}/{ctx.space.name}"
        root = unquote(str(lock["root"])).rstrip("/")
        target = (share + environ.get("PATH_INFO", "")).rstrip("/")
        in_space = root == base or root.startswith(base + "/")
        covers = target == root or (lock.get("depth") == "infinity"
                                    and target.startswith(root + "/"))
        if not (in_space and covers):
            return self.next_app(environ, start_response)
        rel = root[len(base):] or "/"
        actor = ctx.files.actor or audit.Actor(ctx.username, environ.get("REMOTE_ADDR"), "dav")
        try:
            with ctx.files.db.engine.begin() as c:
                audit.record(c, ctx.space.id, audit.Action.LOCK_STOLEN, actor=actor, path=rel,
                             space_name=ctx.space.name,
                             detail=f"bloqueo de {lock['principal']} ({lock.get('scope')}, "
                                    f"{lock.get('depth')})")
        except Exception as exc:  # noqa: BLE001 - no record, no broken lock
            log.error("lock break refused (audit unavailable): space=%s path=%s: %s",
                      ctx.space.name, rel, exc)

            raise HumanDAVError(503, "No se pudo registrar el cambio; el bloqueo sigue. "
                                "Intente de nuevo en unos segundos.",
                                [("Retry-After", "5")]) from None
        lm.release(token)
        log.info("lock stolen: space=%s path=%s holder=%s by=%s", ctx.space.name, rel,
                 lock["principal"], ctx.username)
        start_response("204 No Content", [("Content-Length", "0")])
        return [b""]


# -- the empty files LOCK creates on new names ---------------------------------------

#: environ key: the relative path of the placeholder this request's LOCK created.
PLACEHOLDER_KEY = "resguardo.placeholder"


class LockPlaceholders(BaseMiddleware):
    """A LOCK on a name that does not exist creates an empty file there (RFC
    4918 §9.10.4; see spaces.files.storage.SpaceFiles.create_empty). If no write
    follows, it must not stay behind (davfs2 copying a file that does not fit:
    LOCK, PUT → 507, UNLOCK; Office likewise). It goes away when:

    - its first write is refused or fails (the domain's upload path);
    - the LOCK that created it fails afterwards (WsgiDAV creates the file before
      it checks the locks above it: 423);
    - its last lock ends without a write: UNLOCK, or expiry, found by a sweep
      that runs every ``SWEEP_SECONDS`` on its own thread whether or not
      requests come (and on a drive request when one is due), on any node; a
      placeholder younger than ``GRACE_SECONDS`` is left to its LOCK.

    An UNLOCK of a lock whose placeholder is already gone releases the lock
    and answers 204, as if the file were there (WsgiDAV would answer 404).
    """

    SWEEP_SECONDS = 5.0
    GRACE_SECONDS = 30.0

    #: config key: (settings, db) for the sweeps on the middleware's own thread.
    CONFIG_KEY = "resguardo.placeholder_sweep"

    def __init__(self, wsgidav_app: Any, next_app: Callable[..., Any],
                 config: dict[str, Any]) -> None:
        super().__init__(wsgidav_app, next_app, config)
        self._next_sweep = 0.0
        self._sweeping = threading.Lock()
        where = config.get(self.CONFIG_KEY)
        if where is not None:
            threading.Thread(target=self._sweep_forever, args=(weakref.ref(self), *where),
                             name="lock-placeholder-sweep", daemon=True).start()

    @staticmethod
    def _sweep_forever(ref: Callable[[], LockPlaceholders | None], settings: Any,
                       db: Database) -> None:
        """Sweep every ``SWEEP_SECONDS`` while the application lives (a weak
        reference: a discarded application's thread ends)."""
        while True:
            time.sleep(LockPlaceholders.SWEEP_SECONDS)
            me = ref()
            if me is None:
                return
            if me._sweeping.acquire(blocking=False):
                try:
                    me._next_sweep = time.monotonic() + me.SWEEP_SECONDS
                    me.sweep(settings, db)
                except Exception as exc:  # noqa: BLE001 - the next round tries again
                    log.warning("lock placeholder sweep failed: %s", exc)
                finally:
                    me._sweeping.release()
            del me

    def is_disabled(self) -> bool:
        return False

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> Iterable[bytes]:

        ctx = request_context(environ)
        if ctx is not None:
            self._maybe_sweep(ctx.files)
        method = environ.get("REQUEST_METHOD")
        if ctx is None or method not in ("LOCK", "UNLOCK"):
            return self.next_app(environ, start_response)
        share = environ.get("SCRIPT_NAME", "").rstrip("/")
        path = environ.get("PATH_INFO", "")
        seg, _, rest = path.lstrip("/").partition("/")
        if seg.lower() != ctx.space.name or not rest.strip("/"):
            return self.next_app(environ, start_response)
        rel = "/" + rest.rstrip("/")
        root = normalize_lock_root(quote(share + path))
        lm = getattr(self.wsgidav_app, "lock_manager", None)
        if method == "UNLOCK" and lm is not None:
            gone = self._unlock_gone(environ, start_response, ctx, rel, root, lm)
            if gone is not None:
                return gone
        status: list[str] = []

        def start(s: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status.append(s)
            return start_response(s, headers, exc_info)

        try:
            body = list(self.next_app(environ, start))  # LOCK and UNLOCK answers are small
        except BaseException:
            # WsgiDAV raises its refusals (a LOCK refused with 423 by a lock above
            # the new name, after it created the placeholder): answered outside.
            if method == "LOCK" and environ.get(PLACEHOLDER_KEY):
                self._drop(ctx.files, rel, root)
            raise
        code = int(status[0][:3]) if status and status[0][:3].isdigit() else 500
        if method == "LOCK" and environ.get(PLACEHOLDER_KEY) and code >= 300:
            self._drop(ctx.files, rel, root)
        elif method == "UNLOCK" and code == 204 and lm is not None and not \
                lm.storage.get_lock_list(root, include_root=True, include_children=False,
                                         token_only=True):
            self._drop(ctx.files, rel, root)
        return body

    def _unlock_gone(self, environ: dict[str, Any], start_response: Callable[..., Any],
                     ctx: Any, rel: str, root: str, lm: Any) -> list[bytes] | None:
        """204 for the UNLOCK of a lock rooted here, held by this user, when
        nothing is at the path any more; None to let WsgiDAV answer."""
        from spaces.core.errors import SpaceError

        token = environ.get("HTTP_LOCK_TOKEN", "").strip().strip("<>")
        try:
            if not token or ctx.files.entry(ctx.files.resolve(rel)) is not None:
                return None
        except SpaceError:
            return None
        lock = lm.get_lock(token)
        if lock is None or lock.get("principal") != ctx.username or \
                unquote(str(lock["root"])).rstrip("/") != unquote(root).rstrip("/"):
            return None
        lm.release(token)
        start_response("204 No Content", [("Content-Length", "0")])
        return [b""]

    def _drop(self, files: Any, rel: str, root: str) -> None:
        if files.drop_placeholder(rel):
            pm = getattr(self.wsgidav_app, "prop_manager", None)
            if pm is not None:
                pm.remove_properties(root)

    def _maybe_sweep(self, files: Any) -> None:
        now = time.monotonic()
        if now < self._next_sweep or not self._sweeping.acquire(blocking=False):
            return
        try:
            self._next_sweep = now + self.SWEEP_SECONDS
            self.sweep(files.settings, files.db)
        except Exception as exc:  # noqa: BLE001 - a sweep never fails a request
            log.warning("lock placeholder sweep failed: %s", exc)
        finally:
            self._sweeping.release()

    def sweep(self, settings: Any, db: Database) -> int:
        """Remove the placeholders whose locks have all ended (expired, or gone
        without their UNLOCK reaching us). Returns how many files were removed."""
        from datetime import timedelta

        from spaces.access.files import space_files
        from spaces.core.models import utcnow
        from spaces.files.placeholders import lock_placeholders

        lm = getattr(self.wsgidav_app, "lock_manager", None)
        if lm is None:
            return 0
        removed = 0
        for ph in lock_placeholders(db, utcnow() - timedelta(seconds=self.GRACE_SECONDS)):
            if lm.storage.get_lock_list(ph.lock_root, include_root=True,
                                        include_children=False, token_only=True):
                continue
            files = space_files(settings, db, ph.space_id, ph.space_name)
            if files.drop_placeholder(ph.path):
                removed += 1
                pm = getattr(self.wsgidav_app, "prop_manager", None)
                if pm is not None:
                    pm.remove_properties(ph.lock_root)
        return removed
