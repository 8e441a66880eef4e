"""The space's guard: one commit at a time per space, across threads,
processes and drive nodes.

Every change to a space's files takes its guard for its short commit step
(measure what is replaced, account, rename): a PostgreSQL advisory lock, or
with SQLite (one machine) an ``flock`` on ``<data_dir>/spaces/.space-<id>.lock``,
behind an in-process re-entrant lock. Backup, restore and the recounts take it
too, so they see a space between writes, never in the middle of one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from spaces.core.db import Database
from spaces.core.errors import UsageUnavailable
from spaces.core.settings import Settings
from spaces.files.store import store_for

log = logging.getLogger(__name__)

_locks_guard = threading.Lock()
_space_locks: dict[int, threading.RLock] = {}


def space_lock(space_id: int) -> threading.RLock:
    """The in-process lock that serialises the short commit step of writes in one
    space (measure what is replaced, account, rename). Across processes the
    conditional SQL deltas keep the quota."""
    with _locks_guard:
        lock = _space_locks.get(space_id)
        if lock is None:
            lock = _space_locks[space_id] = threading.RLock()
        return lock


#: First key of the PostgreSQL advisory locks of spaces (the second is the space id).
ADVISORY_NAMESPACE = 0x52475344  # "RGSD"
_held = threading.local()


@contextmanager
def space_guard(settings: Settings, db: Database, space_id: int) -> Iterator[None]:
    """Serialise the short commit step of writes in one space (measure what is
    replaced, account, rename) across threads *and* across processes and drive
    nodes sharing the database and data folder: a PostgreSQL advisory lock, or
    with SQLite (one machine) an ``flock`` on ``spaces/.space-<id>.lock``.
    Re-entrant per thread. Raises UsageUnavailable when the lock cannot be had
    within the database's busy timeout: the write is refused, never unguarded."""
    with space_lock(space_id):
        held: set[int] = getattr(_held, "spaces", set())
        _held.spaces = held
        if space_id in held:
            yield
            return
        held.add(space_id)
        try:
            if db.is_sqlite:
                with _file_lock(settings, space_id, settings.database.busy_timeout_ms):
                    yield
            else:
                with _advisory_lock(db, space_id):
                    yield
        finally:
            held.discard(space_id)


@contextmanager
def _advisory_lock(db: Database, space_id: int) -> Iterator[None]:
    try:
        conn = db.engine.connect()
        conn.execute(text("SELECT pg_advisory_lock(:ns, :id)"),
                     {"ns": ADVISORY_NAMESPACE, "id": space_id})
    except SQLAlchemyError as exc:
        log.error("space lock unavailable: space_id=%s: %s", space_id, exc)
        raise UsageUnavailable(str(exc)) from exc
    try:
        yield
    finally:
        try:
            conn.execute(text("SELECT pg_advisory_unlock(:ns, :id)"),
                         {"ns": ADVISORY_NAMESPACE, "id": space_id})
            conn.close()
        except SQLAlchemyError:
            conn.invalidate()  # closing the session releases its advisory locks


@contextmanager
def _file_lock(settings: Settings, space_id: int, timeout_ms: int) -> Iterator[None]:
    store = store_for(settings)
    path = settings.data_path / "spaces" / f".space-{space_id}.lock"
    store.mkdir(path.parent, parents=True, exist_ok=True)
    with ExitStack() as held:
        try:
            held.enter_context(store.flock(path, timeout_ms / 1000))
        except TimeoutError:
            raise UsageUnavailable("space lock timeout") from None
        yield
