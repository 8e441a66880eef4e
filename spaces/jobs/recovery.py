"""Crash recovery: what a killed process or node left behind in the spaces.

Reservations of uploads no live process holds (their leases) are given back,
the temporary files of interrupted uploads removed, and the trash and versions
of each space reconciled with their rows, the space recounted only where they
needed repair. Run at start-up and, for expired leases, by every node's sweep.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

from spaces.access.service import list_spaces
from spaces.core.db import Database
from spaces.core.models import utcnow
from spaces.core.settings import Settings
from spaces.files import quota, trash, versions
from spaces.files.layout import NODE, STALE_UPLOAD_SECONDS, ensure_space_dirs, space_dir
from spaces.files.storage import SpaceFiles

log = logging.getLogger(__name__)


def _orphaned(p: Path) -> bool:
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
        return time.time() - p.lstat().st_mtime > STALE_UPLOAD_SECONDS
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
            tmp.unlink(missing_ok=True)
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
    for space in list_spaces(db):
        tmp = space_dir(settings, space.name) / "tmp"
        leftovers = [p for p in tmp.iterdir() if _orphaned(p)] if tmp.is_dir() else []
        for p in leftovers:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
        if leftovers:
            log.warning("start-up: removed %d interrupted uploads in space %s",
                        len(leftovers), space.name)
        ensure_space_dirs(settings, space.name)
        files = SpaceFiles(settings, db, space.id, space.name)
        with files.guard():
            if trash.reconcile(files) + versions.reconcile(files):
                drifts.append(quota.recount(db, files.store, space.id, space.name, files.root))
    return drifts
