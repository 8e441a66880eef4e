"""WebDAV lock storage in the database (the default 'database' backend): locks
survive a restart and are shared by every drive process using the same
database. Implements the interface of WsgiDAV's ``LockStorageDict``.

Also :class:`LockBreaker`: a space admin may remove another member's lock (the
"stolen lock" of the audit log), which WsgiDAV alone refuses to anyone but the
holder.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, unquote

from sqlalchemy import bindparam, delete, false, insert, or_, select, text, update
from wsgidav import util
from wsgidav.dav_error import DAVErrorCondition, PRECONDITION_CODE_LockConflict
from wsgidav.lock_man.lock_manager import LockManager
from wsgidav.lock_man.lock_storage import (
    generate_lock_token,
    normalize_lock_root,
    validate_lock,
)
from wsgidav.mw.base_mw import BaseMiddleware

from davserver.request import (
    HumanDAVError,
    plain_refusal,
    request_context,
    split_path,
    to_dav_error,
)
from spaces.core import audit
from spaces.core.db import Database, below, below_params
from spaces.core.errors import SpaceError
from spaces.core.models import DavLock
from spaces.core.settings import Settings
from spaces.files import locks as domain

log = logging.getLogger(__name__)

_FIELDS = ("token", "root", "principal", "owner", "scope", "type", "depth", "timeout",
           "expire")


def _as_dict(row: Any) -> dict[str, Any]:
    """A stored lock as WsgiDAV wants it: its ``owner`` is XML *bytes* (the
    column holds that XML as UTF-8 text, the same on SQLite and PostgreSQL)."""
    lock = {f: row[f] for f in _FIELDS}
    owner = lock["owner"]
    lock["owner"] = owner.encode("utf-8") if isinstance(owner, str) and owner else owner
    return lock


def _owner_text(owner: str | bytes | None) -> str:
    """WsgiDAV hands the lock owner as XML bytes; bytes bound to a text column
    become bytea on PostgreSQL (read back as '\\x3c3f...'): store the text."""
    if isinstance(owner, bytes):
        return owner.decode("utf-8")
    return owner or ""



def _lock_list_statements() -> dict[tuple[bool, bool], Any]:
    """WsgiDAV asks for the locks of a path several times per write request:
    the statements are built once (SQLAlchemy then reuses their compiled form)."""
    t = DavLock.__table__
    at_root = t.c.root == bindparam("root")
    under = below(t.c.root)
    return {(True, False): select(t).where(at_root),
            (False, True): select(t).where(under),
            (True, True): select(t).where(or_(at_root, under)),
            (False, False): select(t).where(false())}


_LOCK_LIST = _lock_list_statements()
_LOCKS_AT_ROOTS = select(DavLock.__table__).where(
    DavLock.__table__.c.root.in_(bindparam("roots", expanding=True)))


def _space_of(root: str) -> str | None:
    """The space a lock root belongs to ("/dav/<space>/..."), None outside any."""
    parts = root.split("/")
    if len(parts) >= 3 and "/" + parts[1] == domain.DAV_MOUNT and parts[2]:
        return parts[2]
    return None


def _refused(exc: SpaceError) -> Exception:

    return to_dav_error(exc)


#: First key of the PostgreSQL advisory locks that serialise lock counts per space.
_COUNT_NAMESPACE = 0x52474C4B  # "RGLK"


class SqlLockStorage:
    """Locks in the ``dav_locks`` table, within ``[locks]`` limits (see
    :mod:`spaces.files.locks`): each lock is inserted and the space's and the
    user's live locks counted in one transaction, serialised per space, so
    simultaneous LOCKs cannot pass the counts together."""

    def __init__(self, db: Database, limits: domain.LockLimits) -> None:
        self.db = db
        self.limits = limits

    def __repr__(self) -> str:
        return "SqlLockStorage"

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def cleanup(self) -> None:
        with self.db.engine.begin() as c:
            c.execute(delete(DavLock).where(DavLock.expire >= 0, DavLock.expire < time.time()))

    def clear(self) -> None:
        with self.db.engine.begin() as c:
            c.execute(delete(DavLock))

    def get(self, token: str) -> dict[str, Any] | None:
        with self.db.session() as s:
            row = s.get(DavLock, token)
            if row is None:
                return None
            if 0 <= row.expire < time.time():
                s.delete(row)
                return None
            return _as_dict({f: getattr(row, f) for f in _FIELDS})

    def clamp(self) -> None:
        """Shorten locks taken before ``max_timeout`` applied (up to a week, or
        forever) to at most ``max_timeout`` from now."""
        cap = time.time() + self.limits.max_timeout
        with self.db.engine.begin() as c:
            c.execute(update(DavLock).where(or_(DavLock.expire < 0, DavLock.expire > cap))
                      .values(expire=cap, timeout=self.limits.max_timeout))

    def create(self, path: str, lock: dict[str, Any]) -> dict[str, Any]:
        assert lock.get("token") is None
        assert lock.get("expire") is None, "Use timeout instead of expire"
        path = normalize_lock_root(path)
        lock["root"] = path
        timeout = self.limits.timeout(lock.get("timeout"))
        lock["timeout"] = timeout
        lock["expire"] = time.time() + timeout
        validate_lock(lock)
        lock["token"] = generate_lock_token()
        space = _space_of(path)
        try:
            self.limits.check_owner(lock.get("owner"))
            with self.db.engine.begin() as c:
                if space is not None and not self.db.is_sqlite:
                    c.execute(text("SELECT pg_advisory_xact_lock(:ns, hashtext(:space))"),
                              {"ns": _COUNT_NAMESPACE, "space": space})
                # SQLite: the insert takes the database's write lock first.
                c.execute(insert(DavLock).values(
                    token=lock["token"], root=path, principal=lock["principal"],
                    owner=_owner_text(lock.get("owner")), scope=lock["scope"],
                    type=lock["type"], depth=lock["depth"], timeout=timeout,
                    expire=lock["expire"]))
                if space is not None:
                    self.limits.check_counts(*domain.sql_counts(c, space, lock["principal"]))
        except SpaceError as exc:
            log.info("lock refused: %s by %s: %s", path, lock["principal"], exc)
            raise _refused(exc) from None
        return lock

    def refresh(self, token: str, *, timeout: float) -> dict[str, Any]:
        timeout = self.limits.timeout(timeout)
        with self.db.engine.begin() as c:
            c.execute(update(DavLock).where(DavLock.token == token)
                      .values(timeout=timeout, expire=time.time() + timeout))
        lock = self.get(token)
        if lock is None:
            raise ValueError("Lock must exist")
        return lock

    def delete(self, token: str) -> bool:
        with self.db.engine.begin() as c:
            return bool(c.execute(delete(DavLock).where(DavLock.token == token)).rowcount)

    def get_lock_list(self, path: str, *, include_root: bool, include_children: bool,
                      token_only: bool) -> list[Any]:
        path = normalize_lock_root(path)
        stmt = _LOCK_LIST[(include_root, include_children)]
        now = time.time()
        with self.db.engine.connect() as c:
            rows = c.execute(stmt, {"root": path, **below_params(path)}
                             ).mappings().all()
        out: list[Any] = []
        for r in rows:
            if 0 <= r["expire"] < now:
                continue
            out.append(r["token"] if token_only else _as_dict(r))
        return out


    def get_lock_lists(self, paths: list[str]) -> dict[str, list[dict[str, Any]]]:
        """The locks rooted exactly at each of ``paths`` (like ``get_lock_list``
        with include_root only), in one query: path -> locks."""
        keys = {p: normalize_lock_root(p) for p in paths}
        now = time.time()
        with self.db.engine.connect() as c:
            rows = c.execute(_LOCKS_AT_ROOTS, {"roots": sorted(set(keys.values()))}
                             ).mappings().all()
        by_root: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            if 0 <= r["expire"] < now:
                continue
            by_root.setdefault(r["root"], []).append(_as_dict(r))
        return {p: [dict(lk) for lk in by_root.get(k, ())] for p, k in keys.items()}


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


# -- Redis ---------------------------------------------------------------------------

_LOCKS_UNAVAILABLE = ("El servicio de bloqueos no responde; no se modificó nada. "
                      "Intente de nuevo en unos segundos.")


def _unavailable(exc: Exception) -> Exception:

    log.error("lock storage unavailable: %s", exc)
    return HumanDAVError(503, _LOCKS_UNAVAILABLE, [("Retry-After", "5")])


_dump = domain.redis_dump
_parse = domain.redis_parse


def _is_below(child: str, parent: str) -> bool:
    return child.startswith(parent.rstrip("/") + "/")


class RedisLockStorage:
    """WebDAV locks in Redis (``[locks] backend = "redis"``), shared by every
    drive node. Implements the interface of WsgiDAV's ``LockStorageDict``.

    Written for several nodes, where WsgiDAV's own ``LockStorageRedis`` falls
    short: records are JSON, not pickles (whoever can write to Redis must not
    run code in the drive); every key carries ``key_prefix``, so installations
    can share a Redis; the lock roots live in one sorted set read by
    lexicographic range, never with ``KEYS`` (which blocks Redis and reads
    ``[`` in a folder name as a glob, hiding the locks inside ``Facturas
    [copia]``); and :meth:`create` re-checks conflicts under a Redis mutex,
    since WsgiDAV's check-then-create is atomic only within one process.
    A Redis error is a 503 with a Spanish message: writes fail closed.
    """

    def __init__(self, url: str, password: str | None = None,
                 key_prefix: str = "resguardo:locks:", *,
                 limits: domain.LockLimits) -> None:
        import redis

        self._redis_errors = (redis.RedisError, OSError)
        # decode_responses: every answer is a str (redis-py's types say bytes | str).
        self.client: Any = redis.Redis.from_url(url, password=password, decode_responses=True,
                                           socket_timeout=5, socket_connect_timeout=5)
        self.prefix = key_prefix
        self.index = domain.redis_index(key_prefix)
        self.limits = limits

    def __repr__(self) -> str:
        return "RedisLockStorage"

    def persistence(self) -> tuple[bool | None, str]:
        """Whether the locks survive a restart of Redis: (True, how) with RDB
        snapshots or an append-only file, (False, why) with neither, (None,
        why) when Redis will not say (CONFIG disabled, as on many managed
        services) or cannot be reached."""
        try:
            save = str(self.client.config_get("save").get("save", "")).strip()
            aof = str(self.client.config_get("appendonly").get("appendonly", "no")).strip()
        except self._redis_errors as exc:
            return None, f"CONFIG GET refused or Redis unreachable ({exc})"
        ways = ([f"RDB save '{save}'"] if save else []) + (["appendonly"] if aof == "yes" else [])
        if ways:
            return True, " and ".join(ways)
        return False, "save '' and appendonly no"

    def _key(self, token: str) -> str:
        return domain.redis_key(self.prefix, token)

    @staticmethod
    def _member(root: str, token: str) -> str:
        return domain.redis_member(root, token)

    def clamp(self) -> None:
        """Shorten locks taken before ``max_timeout`` applied (see SqlLockStorage.clamp)."""
        cap = time.time() + self.limits.max_timeout
        try:
            for lock in self._prune(self.client.zrange(self.index, 0, -1)):
                if lock["expire"] > cap:
                    lock["expire"], lock["timeout"] = cap, self.limits.max_timeout
                    self.client.set(self._key(lock["token"]), _dump(lock),
                                    px=int(self.limits.max_timeout * 1000), xx=True)
        except self._redis_errors as exc:
            raise _unavailable(exc) from exc

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def _load(self, token: str) -> dict[str, Any] | None:
        raw = self.client.get(self._key(token))
        if raw is None:
            return None
        lock = _parse(raw)
        if 0 <= lock["expire"] < time.time():
            return None
        return lock

    def cleanup(self) -> None:
        """Drop index entries whose lock expired (Redis already dropped the lock)."""
        try:
            members = self.client.zrange(self.index, 0, -1)
            self._prune(members)
        except self._redis_errors as exc:
            raise _unavailable(exc) from exc

    def _prune(self, members: list[str]) -> list[dict[str, Any]]:
        """The live locks of ``members``; removes the members of dead ones."""
        if not members:
            return []
        raws = self.client.mget([self._key(m.rpartition("\x00")[2]) for m in members])
        live, dead = [], []
        now = time.time()
        for m, raw in zip(members, raws, strict=True):
            lock = _parse(raw) if raw is not None else None
            if lock is None or 0 <= lock["expire"] < now:
                dead.append(m)
            else:
                live.append(lock)
        if dead:
            self.client.zrem(self.index, *dead)
        return live

    def clear(self) -> None:
        try:
            members = self.client.zrange(self.index, 0, -1)
            keys = [self._key(m.rpartition("\x00")[2]) for m in members]
            self.client.delete(self.index, *keys)
        except self._redis_errors as exc:
            raise _unavailable(exc) from exc

    def get(self, token: str) -> dict[str, Any] | None:
        try:
            return self._load(token)
        except self._redis_errors as exc:
            raise _unavailable(exc) from exc

    def _locks_at(self, root: str, *, include_root: bool,
                  include_children: bool) -> list[dict[str, Any]]:
        members: list[str] = []
        if include_root:
            members += self.client.zrangebylex(self.index, f"[{root}\x00", f"({root}\x01")
        if include_children:
            base = root.rstrip("/")
            members += self.client.zrangebylex(self.index, f"[{base}/", f"({base}0")
        return self._prune(members)

    def _conflicts(self, root: str, lock: dict[str, Any]) -> bool:
        """Whether an existing lock excludes ``lock`` at ``root`` (RFC 4918 §6.1)."""
        candidates = self._locks_at(root, include_root=True,
                                    include_children=lock["depth"] == "infinity")
        parent = root
        while "/" in parent.strip("/"):
            parent = parent.rstrip("/").rpartition("/")[0] or "/"
            candidates += [c for c in self._locks_at(parent, include_root=True,
                                                     include_children=False)
                           if c["depth"] == "infinity"]
        return any(not (c["scope"] == "shared" and lock["scope"] == "shared")
                   for c in candidates
                   if c["root"] == root or _is_below(root, c["root"])
                   or _is_below(c["root"], root))

    def create(self, path: str, lock: dict[str, Any]) -> dict[str, Any]:
        from wsgidav.dav_error import HTTP_LOCKED, DAVError

        assert lock.get("token") is None
        assert lock.get("expire") is None, "Use timeout instead of expire"
        path = normalize_lock_root(path)
        lock["root"] = path
        timeout = self.limits.timeout(lock.get("timeout"))
        lock["timeout"] = timeout
        lock["expire"] = time.time() + timeout
        validate_lock(lock)
        lock["token"] = generate_lock_token()
        space = _space_of(path)
        try:
            self.limits.check_owner(lock.get("owner"))
        except SpaceError as exc:
            raise _refused(exc) from None
        try:
            with self.client.lock(self.prefix + "mutex", timeout=10, blocking_timeout=10):
                if self._conflicts(path, lock):
                    log.info("lock refused (taken on another node): %s", path)
                    raise DAVError(HTTP_LOCKED)
                if space is not None:
                    base = domain.lock_base(space)
                    held = self._locks_at(base, include_root=True, include_children=True)
                    mine = sum(1 for lk in held if lk["principal"] == lock["principal"])
                    try:
                        self.limits.check_counts(len(held) + 1, mine + 1)
                    except SpaceError as exc:
                        log.info("lock refused: %s by %s: %s", path, lock["principal"], exc)
                        raise _refused(exc) from None
                pipe = self.client.pipeline(transaction=True)
                pipe.set(self._key(lock["token"]), _dump(lock),
                         px=max(int(timeout * 1000), 1))
                pipe.zadd(self.index, {self._member(path, lock["token"]): 0})
                pipe.execute()
        except self._redis_errors as exc:
            raise _unavailable(exc) from exc
        return lock

    def refresh(self, token: str, *, timeout: float) -> dict[str, Any]:
        timeout = self.limits.timeout(timeout)
        try:
            lock = self._load(token)
            if lock is None:
                raise ValueError("Lock must exist")
            lock["timeout"] = timeout
            lock["expire"] = time.time() + timeout
            if not self.client.set(self._key(token), _dump(lock),
                                   px=max(int(timeout * 1000), 1), xx=True):
                raise ValueError("Lock must exist")
        except self._redis_errors as exc:
            raise _unavailable(exc) from exc
        return lock

    def delete(self, token: str) -> bool:
        try:
            lock = self._load(token)
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(self._key(token))
            if lock is not None:
                pipe.zrem(self.index, self._member(lock["root"], token))
            return bool(pipe.execute()[0])
        except self._redis_errors as exc:
            raise _unavailable(exc) from exc

    def get_lock_list(self, path: str, *, include_root: bool, include_children: bool,
                      token_only: bool) -> list[Any]:
        path = normalize_lock_root(path)
        try:
            locks = self._locks_at(path, include_root=include_root,
                                   include_children=include_children)
        except self._redis_errors as exc:
            raise _unavailable(exc) from exc
        return [lk["token"] for lk in locks] if token_only else locks


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

        from spaces.core.models import utcnow
        from spaces.files.storage import SpaceFiles, lock_placeholders

        lm = getattr(self.wsgidav_app, "lock_manager", None)
        if lm is None:
            return 0
        removed = 0
        for ph in lock_placeholders(db, utcnow() - timedelta(seconds=self.GRACE_SECONDS)):
            if lm.storage.get_lock_list(ph.lock_root, include_root=True,
                                        include_children=False, token_only=True):
                continue
            files = SpaceFiles(settings, db, ph.space_id, ph.space_name)
            if files.drop_placeholder(ph.path):
                removed += 1
                pm = getattr(self.wsgidav_app, "prop_manager", None)
                if pm is not None:
                    pm.remove_properties(ph.lock_root)
        return removed


class LockStoreNotDurable(Exception):
    """``[locks] redis_persistence = "require"`` and Redis would lose the locks."""


def check_lock_persistence(settings: Settings) -> None:
    """At start-up, with ``[locks] backend = "redis"``: say loudly in the log
    when a Redis restart would drop every WebDAV lock (a PUT without the old
    token would then succeed while Office still believes it holds the lock),
    or when Redis does not let us tell. Raises LockStoreNotDurable instead
    with ``redis_persistence = "require"``."""
    lk = settings.locks
    if lk.backend != "redis":
        return
    storage = RedisLockStorage(lk.redis_url, settings.redis_password, lk.key_prefix,
                               limits=domain.LockLimits.of(settings))
    durable, how = storage.persistence()
    if durable:
        log.info("locks: Redis keeps them across restarts (%s)", how)
        return
    state = (f"has no persistence ({how})" if durable is False
             else f"cannot tell whether it persists: {how}")
    message = (f"locks: Redis at {_redacted(lk.redis_url)} {state}: every WebDAV lock is "
               "LOST when Redis restarts, silently (Office keeps believing it holds its "
               "lock). Turn on appendonly (appendfsync everysec) or RDB snapshots; see "
               "docs/deploy.md")
    if lk.redis_persistence == "require":
        raise LockStoreNotDurable(message)
    log.warning(message)


def _redacted(url: str) -> str:
    """A Redis URL without its password, for the log."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{':' + str(parts.port) if parts.port else ''}{parts.path}"
