"""WebDAV locks as the domain sees them: their limits, what is locked in a space
(by whom, until when) and breaking a lock from the portal.

The drive keeps the locks (``davserver.lockstorage``: the ``dav_locks`` table, or
Redis with ``[locks] backend = "redis"``); this module reads and removes them
where they are, with the same layout, so the portal needs no WebDAV code.

Limits (``[locks]``), so that no member can freeze a space: a lock lasts
``max_timeout`` at most (Infinite included; the client refreshes it while the
document is open); nobody locks the space's root, and only a space admin locks
a folder (a deep lock on a folder stops every write below it); a lock's
``<owner>`` is at most ``max_owner_bytes``; a user holds at most
``max_per_user`` live locks in a space, and a space at most ``max_per_space``.
A space admin sees every lock on the space's page and breaks any of them;
each break is recorded (``lock_stolen``), as an admin's UNLOCK on the drive.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from sqlalchemy import delete, func, or_, select
from sqlalchemy.engine import Connection

from spaces.core import audit
from spaces.core.db import Database, below, below_params
from spaces.core.errors import Forbidden, InvalidName, NotFound, SpaceError
from spaces.core.models import DAV_MOUNT, DavLock
from spaces.core.settings import Settings

log = logging.getLogger(__name__)

class LocksUnavailable(SpaceError):
    """The lock storage (database or Redis) does not answer: nothing changed."""

    status = 503

    def __init__(self) -> None:
        super().__init__("El servicio de bloqueos no responde; no se modificó nada. Intente de "
                         "nuevo en unos segundos.")


def lock_base(space_name: str) -> str:
    """The root every lock of ``space_name`` starts with (space names need no quoting)."""
    return f"{DAV_MOUNT}/{space_name}"


def in_space(root: str, space_name: str) -> bool:
    base = lock_base(space_name)
    return root == base or root.startswith(base + "/")


@dataclass(frozen=True)
class LockLimits:
    max_timeout: float
    max_owner_bytes: int
    max_per_user: int
    max_per_space: int

    @classmethod
    def of(cls, settings: Settings) -> LockLimits:
        lk = settings.locks
        return cls(float(max(lk.max_timeout, 1)), lk.max_owner_bytes, lk.max_per_user,
                   lk.max_per_space)

    def timeout(self, asked: float | None) -> float:
        """The lock's lifetime for a client that asked for ``asked`` seconds
        (None: nothing; negative: Infinite): never more than ``max_timeout``."""
        if asked is None or asked <= 0 or asked > self.max_timeout:
            return self.max_timeout
        return float(asked)

    def check_owner(self, owner: bytes | str | None) -> None:
        size = len(owner.encode("utf-8") if isinstance(owner, str) else owner or b"")
        if size > self.max_owner_bytes:
            raise InvalidName(f"El bloqueo trae un propietario (owner) demasiado largo: "
                              f"{size} bytes, el máximo es {self.max_owner_bytes}.")

    def check_counts(self, space_count: int, user_count: int) -> None:
        """Raise Forbidden when a space with ``space_count`` live locks, or its
        user with ``user_count``, already holds more than allowed (counts that
        include the lock being taken)."""
        if user_count > self.max_per_user:
            raise Forbidden(
                f"Ya tiene {self.max_per_user} bloqueos abiertos en este espacio, el máximo. "
                "Cierre algunos documentos (o pida a un administrador del espacio que quite "
                "bloqueos viejos) e intente de nuevo.")
        if space_count > self.max_per_space:
            raise Forbidden(
                f"El espacio ya tiene {self.max_per_space} bloqueos abiertos, el máximo. "
                "Cierre algunos documentos o pida a un administrador del espacio que quite "
                "bloqueos desde el portal.")


def check_lockable(*, is_space_root: bool, is_folder: bool, role: str) -> None:
    """Nobody locks a space's root; only a space admin locks a folder."""
    if is_space_root:
        raise Forbidden("No se puede bloquear la raíz del espacio; bloquee el archivo que va a "
                        "editar.")
    if is_folder and role != "admin":
        raise Forbidden("Sólo un administrador del espacio puede bloquear una carpeta; bloquee "
                        "el archivo que va a editar.")


@dataclass(frozen=True)
class LockInfo:
    """A live lock of a space, for people: its path inside the space (decoded)."""

    token: str
    root: str
    path: str
    principal: str
    scope: str
    depth: str
    expire: float

    @property
    def seconds_left(self) -> int:
        return max(int(self.expire - time.time()), 0)


def _info(lock: dict[str, Any], space_name: str) -> LockInfo:
    root = str(lock["root"])
    rel = unquote(root[len(lock_base(space_name)):]) or "/"
    return LockInfo(str(lock["token"]), root, rel, str(lock["principal"]), str(lock["scope"]),
                    str(lock["depth"]), float(lock["expire"]))


# -- the database backend ------------------------------------------------------------

def _sql_in_space(space_name: str) -> Any:
    """The space's locks: their roots are the space's base URL or below it
    (compared exactly: :func:`spaces.core.db.below`, never LIKE)."""
    base = lock_base(space_name)
    return or_(DavLock.root == base, below(DavLock.root, "space_base")).params(
        **below_params(base, "space_base"))


def _sql_live(now: float) -> Any:
    return or_(DavLock.expire < 0, DavLock.expire >= now)


def sql_counts(conn: Connection, space_name: str, principal: str) -> tuple[int, int]:
    """(live locks of the space, of which ``principal``'s), inside ``conn``'s transaction."""
    now = time.time()
    space_count = conn.scalar(select(func.count()).select_from(DavLock)
                              .where(_sql_in_space(space_name), _sql_live(now))) or 0
    user_count = conn.scalar(select(func.count()).select_from(DavLock)
                             .where(_sql_in_space(space_name), _sql_live(now),
                                    DavLock.principal == principal)) or 0
    return int(space_count), int(user_count)


# -- the Redis backend (the layout davserver.lockstorage.RedisLockStorage writes) -----

def redis_key(prefix: str, token: str) -> str:
    return f"{prefix}lock:{token}"


def redis_member(root: str, token: str) -> str:
    return f"{root}\x00{token}"


def redis_index(prefix: str) -> str:
    """A sorted set of "root\\0token", read by lexicographic range."""
    return prefix + "roots"


def redis_dump(lock: dict[str, Any]) -> str:
    """JSON of a lock; WsgiDAV keeps ``owner`` as XML bytes."""
    data = dict(lock)
    if isinstance(data.get("owner"), bytes):
        data["owner"] = data["owner"].decode("utf-8")
        data["owner_is_bytes"] = True
    return json.dumps(data)


def redis_parse(raw: str) -> dict[str, Any]:
    lock: dict[str, Any] = json.loads(raw)
    if lock.pop("owner_is_bytes", False):
        lock["owner"] = lock["owner"].encode("utf-8")
    return lock


def _redis(settings: Settings) -> Any:
    import redis

    return redis.Redis.from_url(settings.locks.redis_url, password=settings.redis_password,
                                decode_responses=True, socket_timeout=5,
                                socket_connect_timeout=5)


def _redis_space_locks(settings: Settings, space_name: str) -> list[dict[str, Any]]:
    client = _redis(settings)
    prefix = settings.locks.key_prefix
    base = lock_base(space_name)
    index = redis_index(prefix)
    members = (client.zrangebylex(index, f"[{base}\x00", f"({base}\x01")
               + client.zrangebylex(index, f"[{base}/", f"({base}0"))
    if not members:
        return []
    raws = client.mget([redis_key(prefix, m.rpartition("\x00")[2]) for m in members])
    now = time.time()
    locks = [redis_parse(r) for r in raws if r is not None]
    return [lk for lk in locks if not 0 <= lk["expire"] < now]


# -- reading and breaking -------------------------------------------------------------

def space_locks(settings: Settings, db: Database, space_name: str) -> list[LockInfo]:
    """The live locks of a space, by path. Raises LocksUnavailable when the
    lock storage does not answer."""
    try:
        if settings.locks.backend == "redis":
            raw = _redis_space_locks(settings, space_name)
        else:
            with db.engine.connect() as c:
                rows = c.execute(select(DavLock.__table__).where(
                    _sql_in_space(space_name), _sql_live(time.time()))).mappings().all()
            raw = [dict(r) for r in rows]
    except Exception as exc:  # noqa: BLE001 - SQL or Redis: the page says it is unavailable
        log.error("locks unavailable for space %s: %s", space_name, exc)
        raise LocksUnavailable() from exc
    return sorted((_info(lk, space_name) for lk in raw), key=lambda i: (i.path, i.token))


def break_lock(settings: Settings, db: Database, space_id: int, space_name: str, token: str,
               *, actor: audit.Actor | None) -> LockInfo:
    """Remove the live lock ``token`` of the space (NotFound if there is none
    there), recorded as ``lock_stolen`` first: no record, no broken lock."""
    lock = next((lk for lk in space_locks(settings, db, space_name) if lk.token == token), None)
    if lock is None:
        raise NotFound("Ese bloqueo ya no existe (venció o se quitó).")
    try:
        with db.engine.begin() as c:
            audit.record(c, space_id, audit.Action.LOCK_STOLEN, actor=actor, path=lock.path,
                         space_name=space_name,
                         detail=f"bloqueo de {lock.principal} ({lock.scope}, {lock.depth}), "
                                "quitado desde el portal")
            if settings.locks.backend != "redis":
                c.execute(delete(DavLock).where(DavLock.token == token))
        if settings.locks.backend == "redis":
            client = _redis(settings)
            prefix = settings.locks.key_prefix
            pipe = client.pipeline(transaction=True)
            pipe.delete(redis_key(prefix, token))
            pipe.zrem(redis_index(prefix), redis_member(lock.root, token))
            pipe.execute()
    except Exception as exc:  # noqa: BLE001 - fail closed: the lock stays
        log.error("lock break failed: space=%s path=%s: %s", space_name, lock.path, exc)
        raise LocksUnavailable() from exc
    log.info("lock broken from the portal: space=%s path=%s holder=%s by=%s", space_name,
             lock.path, lock.principal, actor.user if actor else None)
    return lock
