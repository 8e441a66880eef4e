"""Where the drive keeps its WebDAV locks: the lock storages, each implementing
the interface of WsgiDAV's ``LockStorageDict`` within the ``[locks]`` limits
(:mod:`spaces.files.locks`).

- :class:`SqlLockStorage` (the default 'database' backend): the ``dav_locks``
  table; locks survive a restart and are shared by every drive process using
  the same database.
- :class:`RedisLockStorage` (``[locks] backend = "redis"``): shared by every
  drive node; :func:`check_lock_persistence` says at start-up whether a Redis
  restart would lose them.

What uses them (the lock manager, the middlewares that decide what may be
locked, and the placeholder sweeps) is :mod:`davserver.locks`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import bindparam, delete, false, insert, or_, select, text, update
from wsgidav.lock_man.lock_storage import (
    generate_lock_token,
    normalize_lock_root,
    validate_lock,
)

from davserver.request import HumanDAVError, to_dav_error
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


def _prepare_new(limits: domain.LockLimits, path: str,
                 lock: dict[str, Any]) -> tuple[str, str | None]:
    """A new lock as both storages keep it: its root normalised, its timeout
    capped by ``limits`` and its expiry, a fresh token. Returns (root, space)."""
    assert lock.get("token") is None
    assert lock.get("expire") is None, "Use timeout instead of expire"
    path = normalize_lock_root(path)
    lock["root"] = path
    timeout = limits.timeout(lock.get("timeout"))
    lock["timeout"] = timeout
    lock["expire"] = time.time() + timeout
    validate_lock(lock)
    lock["token"] = generate_lock_token()
    return path, _space_of(path)


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
        path, space = _prepare_new(self.limits, path, lock)
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
                    type=lock["type"], depth=lock["depth"], timeout=lock["timeout"],
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

        path, space = _prepare_new(self.limits, path, lock)
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
                         px=max(int(lock["timeout"] * 1000), 1))
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
