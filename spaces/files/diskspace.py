"""The server's own disk: what is free on ``data_dir``'s filesystem, and the
emergency allowance the drive keeps there.

Writes (uploads, new folders, a LOCK's empty file, copies) are refused with
507 (:class:`spaces.files.entries.DiskFull`) when they would leave less than
``[storage] min_free`` free, before their bytes are stored. That allowance is
what deletes, emptying the trash, the database (SQLite lives in ``data_dir``
by default) and ``quota recount`` use on a full disk: none of them is ever
refused for lack of disk, so the disk can always be freed through the product.
Below ``[storage] warn_free`` the server warns (log, /healthz, metric).

Should something else fill the disk completely, the server also keeps a
*ballast* file (``spaces/.ballast``, ``[storage] ballast``) that it
deletes before a delete, an emptying of the trash or a recount finds no room
(:func:`rescue`), and makes again once the disk has room (:func:`keep_ballast`).

Both ask the store (:mod:`spaces.files.store`): this module touches no file itself.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from spaces.core.settings import Settings
from spaces.files.store import store_for

log = logging.getLogger(__name__)

#: Seconds between two "disk low" log lines of one process.
WARN_EVERY = 60.0
_warned = {"at": 0.0}
_warn_lock = threading.Lock()


@dataclass(frozen=True)
class DiskState:
    free_bytes: int
    total_bytes: int
    min_free: int
    warn_free: int

    @property
    def level(self) -> str:
        """'ok', 'low' (below warn_free: time to add disk) or 'full' (below
        min_free: writes are refused, deletes still work)."""
        if self.free_bytes < self.min_free:
            return "full"
        if self.free_bytes < self.warn_free:
            return "low"
        return "ok"


def state(settings: Settings) -> DiskState:
    """The free and total bytes of the filesystem of the spaces' files
    (``data_dir/spaces``, which may be a mount of its own; for an unprivileged
    process: ``f_bavail``)."""
    store = store_for(settings)
    try:
        free, total = store.disk_space(settings.data_path / "spaces")
    except (FileNotFoundError, NotADirectoryError):  # not made yet: data_dir's own
        free, total = store.disk_space(settings.data_path)
    return DiskState(free, total, settings.storage.min_free_bytes,
                     settings.storage.warn_free_bytes)


def warn_if_low(disk: DiskState, *, force: bool = False) -> None:
    """Log the warning (once a minute per process, or now with ``force``)."""
    if disk.level == "ok":
        return
    now = time.monotonic()
    with _warn_lock:
        if not force and now - _warned["at"] < WARN_EVERY and _warned["at"]:
            return
        _warned["at"] = now
    log.warning("disk %s: free=%d bytes total=%d min_free=%d warn_free=%d — add disk or "
                "free space; below min_free writes are refused (507), deletes still work",
                disk.level, disk.free_bytes, disk.total_bytes, disk.min_free, disk.warn_free)


def has_room(settings: Settings, nbytes: int) -> tuple[bool, DiskState]:
    """Whether writing ``nbytes`` more leaves at least ``min_free`` free.
    A filesystem that cannot be asked is let be (the write itself then fails
    with ENOSPC, still a 507)."""
    try:
        disk = state(settings)
    except OSError as exc:
        log.warning("disk state unavailable: %s", exc)
        return True, DiskState(0, 0, 0, 0)
    warn_if_low(disk)
    return disk.free_bytes - max(nbytes, 0) >= disk.min_free, disk


def ballast_path(settings: Settings) -> Path:
    return settings.data_path / "spaces" / ".ballast"


def ballast_size(settings: Settings) -> int:
    """``[storage] ballast``: room held by a file the server deletes when
    something else (a log, another program) has eaten the whole disk."""
    return settings.storage.ballast_bytes


def keep_ballast(settings: Settings) -> bool:
    """Create the ballast file if it is missing and the disk has room for it
    beyond ``min_free`` (at start-up and from the periodic janitor). Returns
    whether it exists afterwards. Never raises."""
    path, size = ballast_path(settings), ballast_size(settings)
    if size <= 0:
        return False
    store = store_for(settings)
    try:
        if store.info(path) is not None:
            return True
        disk = state(settings)
        if disk.free_bytes < disk.min_free + size:
            return False
        if not store.allocate(path, size):
            return False
        log.info("disk ballast kept: %s (%d bytes), released when the disk is full", path,
                 size)
        return True
    except OSError as exc:
        log.warning("disk ballast not kept: %s", exc)
        return False


def rescue(settings: Settings) -> None:
    """Before a delete, emptying the trash or a recount: if the disk is
    (almost) completely full, release the ballast so the database and the
    trash have room to work. Never raises."""
    path, store = ballast_path(settings), store_for(settings)
    try:
        if store.info(path) is None:
            return
        disk = state(settings)
        if disk.free_bytes >= max(ballast_size(settings) // 2, 1):
            return
        store.unlink(path)
        log.error("disk full (free=%d bytes): ballast released (%d bytes) so deletes and "
                  "the database keep working; free disk space now", disk.free_bytes,
                  ballast_size(settings))
    except OSError as exc:
        log.warning("disk ballast not released: %s", exc)
