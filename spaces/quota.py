"""The one writer of a space's usage counters.

Every change is an SQL delta (``used = used + :delta``), never a
read-modify-write, so concurrent requests on several threads or several drive
processes cannot lose updates. A delta that grows usage is *conditional*: it
applies only if the result stays within the quota, so two uploads that each
fit alone but not together cannot both succeed. :func:`recount` is the only
absolute write: it walks the files and sets the counters to what is there.

Fail closed: if the database cannot be read or written, callers get
:class:`UsageUnavailable` and must refuse the write.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import SQLAlchemyError

from spaces.db import Database
from spaces.errors import NotFound, QuotaExceeded, ReadOnlySpace, UsageUnavailable
from spaces.models import Space

log = logging.getLogger(__name__)

#: Larger than any quota (1 PiB): bigger requests are refused before any SQL.
MAX_DELTA = 2**50


@dataclass(frozen=True)
class Usage:
    used_bytes: int
    used_files: int
    quota_bytes: int

    @property
    def available_bytes(self) -> int:
        return max(self.quota_bytes - self.used_bytes, 0)


def usage(db: Database, space_id: int) -> Usage:
    """Current counters of a space. Raises UsageUnavailable if they can't be read."""
    try:
        with db.engine.connect() as conn:
            row = conn.execute(
                select(Space.used_bytes, Space.used_files, Space.quota_bytes).where(
                    Space.id == space_id
                )
            ).one_or_none()
    except SQLAlchemyError as exc:
        log.error("usage unavailable for space %s: %s", space_id, exc)
        raise UsageUnavailable(str(exc)) from exc
    if row is None:
        raise NotFound("El espacio no existe.")
    return Usage(int(row[0]), int(row[1]), int(row[2]))


# Every write runs these: built once, so SQLAlchemy reuses their compiled form.
_RESERVE = (update(Space)
            .where(Space.id == bindparam("space_id"))
            .where(Space.used_bytes + bindparam("nbytes") <= Space.quota_bytes)
            .where(Space.status == "active")
            .values(used_bytes=Space.used_bytes + bindparam("nbytes"),
                    used_files=Space.used_files + bindparam("nfiles")))
_APPLY = (update(Space)
          .where(Space.id == bindparam("space_id"))
          .values(used_bytes=Space.used_bytes + bindparam("nbytes"),
                  used_files=Space.used_files + bindparam("nfiles")))


def reserve(db: Database, space_id: int, space_name: str, nbytes: int, nfiles: int = 0) -> None:
    """Add ``nbytes``/``nfiles`` to the space only if it stays within its quota.

    ``nbytes`` may be 0 (an empty file or a folder): it is still refused when the
    space is already over its quota, because writes into a full space get 507.
    Raises QuotaExceeded (nothing changed) or UsageUnavailable.
    """
    nbytes = max(int(nbytes), 0)
    if nbytes > MAX_DELTA:
        # No space holds this much; an absurd declared length must not reach
        # the database (its integers stop at 2**63).
        now = usage(db, space_id)
        raise QuotaExceeded(space_name, now.used_bytes, now.quota_bytes, nbytes)
    try:
        with db.engine.begin() as conn:
            result = conn.execute(_RESERVE, {"space_id": space_id, "nbytes": nbytes,
                                             "nfiles": int(nfiles)})
            applied = result.rowcount == 1
    except SQLAlchemyError as exc:
        log.error("quota reserve failed for %s: %s", space_name, exc)
        raise UsageUnavailable(str(exc)) from exc
    if not applied:
        now = usage(db, space_id)
        status = _status(db, space_id)
        if status != "active":
            log.info("write refused: space=%s status=%s", space_name, status)
            raise ReadOnlySpace(status)
        log.info(
            "quota refused: space=%s used=%d limit=%d requested=%d",
            space_name, now.used_bytes, now.quota_bytes, nbytes,
        )
        raise QuotaExceeded(space_name, now.used_bytes, now.quota_bytes, nbytes)


def apply(db: Database, space_id: int, nbytes: int, nfiles: int = 0) -> None:
    """Apply an unconditional delta (frees, credits, releases of reservations).

    Never raises for a database error: it is logged, because the bytes are
    already gone from disk and a later recount repairs the counters.
    """
    if nbytes == 0 and nfiles == 0:
        return
    try:
        with db.engine.begin() as conn:
            conn.execute(_APPLY, {"space_id": space_id, "nbytes": int(nbytes),
                                  "nfiles": int(nfiles)})
    except SQLAlchemyError as exc:  # pragma: no cover - needs a failing database
        log.error("quota delta lost for space %s (%+d bytes, %+d files): %s — run "
                  "'resguardo quota recount'", space_id, nbytes, nfiles, exc)


def _status(db: Database, space_id: int) -> str:
    try:
        with db.engine.connect() as conn:
            return str(conn.execute(select(Space.status).where(Space.id == space_id)).scalar_one())
    except SQLAlchemyError as exc:
        raise UsageUnavailable(str(exc)) from exc


@dataclass(frozen=True)
class Drift:
    space: str
    before_bytes: int
    before_files: int
    after_bytes: int
    after_files: int

    @property
    def bytes(self) -> int:
        return self.after_bytes - self.before_bytes

    @property
    def files(self) -> int:
        return self.after_files - self.before_files


def measure_tree(root: Path) -> tuple[int, int]:
    """(bytes of regular files, number of files and folders) below ``root``,
    not counting ``root`` itself and never following symlinks."""
    total = 0
    count = 0
    stack = [str(root)]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except FileNotFoundError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode):
                count += 1
                stack.append(entry.path)
            elif stat.S_ISREG(st.st_mode):
                count += 1
                total += st.st_size
    return total, count


#: Folders beside a space's ``files`` whose content counts toward its usage:
#: deleted items and earlier versions (see spaces.trash, spaces.versions).
COUNTED_AREAS = ("trash", "versions")


def recount(db: Database, space_id: int, space_name: str, files_root: Path) -> Drift:
    """Walk the space's files — and its trash and versions, the siblings of
    ``files_root`` that count toward usage too — and set its counters to what
    is on disk.

    The only absolute write of the counters. Call it with the space idle (or
    under the space's write lock in the drive process), since a write in flight
    holds a reservation the walk cannot see.
    """
    before = usage(db, space_id)
    nbytes, nfiles = measure_tree(files_root)
    for area in COUNTED_AREAS:
        more_bytes, more_files = measure_tree(files_root.parent / area)
        nbytes += more_bytes
        nfiles += more_files
    with db.engine.begin() as conn:
        conn.execute(
            update(Space).where(Space.id == space_id).values(used_bytes=nbytes, used_files=nfiles)
        )
    drift = Drift(space_name, before.used_bytes, before.used_files, nbytes, nfiles)
    if drift.bytes or drift.files:
        log.warning("quota recount: space=%s drift=%+d bytes %+d files",
                    space_name, drift.bytes, drift.files)
    return drift
