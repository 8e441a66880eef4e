"""Crash recovery: what a killed process or node left behind in the spaces.

Reservations of uploads no live process holds (their leases) are given back,
the temporary files of interrupted uploads removed, and the trash and versions
of each space reconciled with their rows, the space recounted only where they
needed repair. Run at start-up and, for expired leases, by every node's sweep.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from pathlib import Path

from sqlalchemy import select

from spaces.access.files import space_files
from spaces.access.service import list_spaces
from spaces.core.db import Database
from spaces.core.models import FileVersion, TrashItem, utcnow
from spaces.core.settings import Settings
from spaces.files import quota, trash
from spaces.files.folder import SpaceFolder
from spaces.files.layout import NODE, STALE_UPLOAD_SECONDS, ensure_space_dirs, space_dir
from spaces.files.store import Store, store_for

log = logging.getLogger(__name__)


def _orphaned(store: Store, p: Path) -> bool:
    """Whether a file in a space's ``tmp`` is what a crashed upload left: written
    by a dead process of this machine, or untouched for an hour. Never the
    upload another live node (sharing the data folder) is still receiving."""
    parts = p.name.split("-")
    if len(parts) == 4 and parts[0] == "up" and parts[1] == NODE and parts[2].isdigit():
        pid = int(parts[2])
        if pid == os.getpid():
            return True
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass  # alive, another user's
    try:
        return time.time() - store.lstat(p).st_mtime > STALE_UPLOAD_SECONDS
    except FileNotFoundError:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reclaim_leases(settings: Settings, db: Database) -> list[quota.Reclaimed]:
    """Give back the reservations no live upload holds: every expired lease
    (whichever node held it) and, at once, those of this machine's dead
    processes; their temporary files go too. Any node may run it at any time
    (each lease is taken in one transaction: two nodes never give one back
    twice). Returns what was given back."""
    now = utcnow()
    out = []
    for row in quota.leases(db):
        dead = row.node == NODE and row.pid != os.getpid() and not _pid_alive(row.pid)
        if not dead and row.expires_at >= now:
            continue
        got = quota.reclaim(db, row.id)
        if got is None:
            continue
        out.append(got)
        tmp = space_dir(settings, row.name) / "tmp" / got.tmp_name
        if os.sep not in got.tmp_name and got.tmp_name.startswith("up-"):
            store_for(settings).unlink(tmp, missing_ok=True)
        log.warning("upload reservation given back: space=%s node=%s pid=%s bytes=%d "
                    "files=%d reason=%s", row.name, row.node, row.pid, got.used_bytes,
                    got.used_files, "process gone" if dead else "lease expired")
    return out


def recover_after_crash(settings: Settings, db: Database) -> list[quota.Drift]:
    """At start-up: give back the reservations of this machine's dead
    processes (their leases: deltas, so an upload another node is receiving
    meanwhile keeps its own), remove the temporary files crashes left in
    ``tmp``, and recount only a space whose trash or versions needed repair
    (the recount counts the uploads in flight). Returns the drifts."""
    for got in reclaim_leases(settings, db):
        log.warning("start-up: interrupted upload given back in space %s (%d bytes)",
                    got.space_id, got.used_bytes)
    drifts = []
    store = store_for(settings)
    for space in list_spaces(db):
        tmp = space_dir(settings, space.name) / "tmp"
        leftovers = [tmp / n for n in _listing(store, tmp) if _orphaned(store, tmp / n)]
        for p in leftovers:
            info = store.info(p)
            if info is not None and info.is_dir:
                store.rmtree(p)
            else:
                store.unlink(p, missing_ok=True)
        if leftovers:
            log.warning("start-up: removed %d interrupted uploads in space %s",
                        len(leftovers), space.name)
        ensure_space_dirs(settings, space.name)
        files = space_files(settings, db, space.id, space.name)
        with files.guard():
            if _reconcile_trash(files) + _reconcile_versions(files):
                drifts.append(quota.recount(db, files.store, space.id, space.name, files.root))
    return drifts


def _listing(store: Store, area: Path) -> list[str]:
    """The names in one of a space's folders (none if it is missing)."""
    info = store.info(area)
    return store.listdir(area) if info is not None and info.is_dir else []


def _reconcile_trash(files: SpaceFolder) -> int:
    """Under the guard: drop trash rows whose item is gone, and give a row to
    anything in ``trash`` that has none (so it can be restored, never silently
    lost). Returns how many things were repaired."""
    repaired = 0
    on_disk = set(_listing(files.store, files.trash_root))
    with files.db.session() as s:
        rows = list(s.scalars(select(TrashItem).where(TrashItem.space_id == files.space_id)))
        for r in rows:
            if r.token not in on_disk:
                s.delete(r)
                repaired += 1
        known = {r.token for r in rows}
        for token in sorted(on_disk - known):
            p = files.trash_root / token
            info = files.store.info(p)
            if info is None:  # a symbolic link (or gone)
                continue
            nbytes, nfiles = (files.store.measure(p) if info.is_dir else (info.size, 0))
            s.add(TrashItem(space_id=files.space_id, token=token,
                            path=f"/recuperado {token[:8]}", is_dir=info.is_dir, size=nbytes,
                            files=nfiles + 1, trashed_at=utcnow(), trashed_by="system"))
            repaired += 1
    if repaired:
        log.warning("start-up: repaired %d trash entries in space %s", repaired,
                    files.space_name)
    return repaired


def _reconcile_versions(files: SpaceFolder) -> int:
    """Under the guard: drop version rows whose file is gone, and move any
    version file without a row into the trash (restorable, never silently
    lost). Returns how many things were repaired."""
    repaired = 0
    on_disk = set(_listing(files.store, files.versions_root))
    with files.db.session() as s:
        rows = list(s.scalars(select(FileVersion)
                              .where(FileVersion.space_id == files.space_id)))
        for r in rows:
            if r.token not in on_disk:
                s.delete(r)
                repaired += 1
    known = {r.token for r in rows}
    for token in sorted(on_disk - known):
        p = files.versions_root / token
        try:
            st = files.store.lstat(p)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):  # a folder, a symbolic link: not a version
            continue
        trash.put(files, p, f"/versión recuperada {token[:8]}", False, st.st_size, 1)
        repaired += 1
    if repaired:
        log.warning("start-up: repaired %d version entries in space %s", repaired,
                    files.space_name)
    return repaired
