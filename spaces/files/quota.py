"""The one writer of a space's usage counters.

Two pairs of counters per space:

- ``used_bytes``/``used_files``: the space's current files (and the uploads
  in flight into them): what the plan counts, what RFC 4331's
  ``quota-used-bytes`` reports. A delete frees it at once; an overwrite is
  credited with the size of what it replaces.
- ``held_bytes``/``held_files``: what the safety net holds (the trash and the
  earlier versions), kept within the space's ``reserve_bytes``, outside the
  plan (see :func:`spaces.files.trash.make_room`). They change only under the
  space's guard, so the reserve needs no conditional SQL.

Every change is an SQL delta (``used = used + :delta``), never a
read-modify-write, so concurrent requests on several threads or several drive
processes cannot lose updates. A delta that grows ``used`` is *conditional*:
it applies only if the result stays within the quota, so two uploads that each
fit alone but not together cannot both succeed. :func:`recount` is the only
absolute write: it has the store measure the files and sets the counters to
what is there. This module touches no file itself.

Fail closed: if the database cannot be read or written, callers get
:class:`UsageUnavailable` and must refuse the write.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from spaces.core.db import Database, below, below_params
from spaces.core.errors import (
    EntryLimitReached,
    NotFound,
    QuotaExceeded,
    ReadOnlySpace,
    UsageUnavailable,
)
from spaces.core.models import DAV_MOUNT, DeadProperty, Space, UploadLease, utcnow
from spaces.files.store import Store

log = logging.getLogger(__name__)

#: Larger than any quota (1 PiB): bigger requests are refused before any SQL.
MAX_DELTA = 2**50


@dataclass(frozen=True)
class Usage:
    """A space's counters: its files against its plan, and its safety net
    (trash and earlier versions) against its reserve."""

    used_bytes: int
    used_files: int
    quota_bytes: int
    held_bytes: int = 0
    held_files: int = 0
    reserve_bytes: int = 0
    #: Files and folders the plan allows, trash and versions included (0: no limit).
    max_entries: int = 0

    @property
    def available_bytes(self) -> int:
        return max(self.quota_bytes - self.used_bytes, 0)


class LeaseLost(UsageUnavailable):
    """An upload's lease was given back meanwhile (it expired: the database
    was away, or the upload stalled): its reservation is no longer counted,
    so the upload cannot go on (503, the client retries)."""


@dataclass
class Lease:
    """Who holds an upload's reservation and for how long (see
    :class:`spaces.core.models.UploadLease`). ``created``: its row exists."""

    space_id: int
    node: str
    pid: int
    tmp_name: str
    seconds: int
    id: str = field(default_factory=lambda: os.urandom(16).hex())
    created: bool = False

    def expiry(self) -> Any:
        return utcnow() + timedelta(seconds=self.seconds)


_LEASE_ADD = (update(UploadLease).where(UploadLease.id == bindparam("lease_id"))
              .values(used_bytes=UploadLease.used_bytes + bindparam("nbytes"),
                      used_files=UploadLease.used_files + bindparam("nfiles"),
                      held_bytes=UploadLease.held_bytes + bindparam("held_bytes"),
                      expires_at=bindparam("expires_at")))
_LEASE_TAKE = (delete(UploadLease).where(UploadLease.id == bindparam("lease_id"))
               .returning(UploadLease.space_id, UploadLease.used_bytes,
                          UploadLease.used_files, UploadLease.held_bytes,
                          UploadLease.tmp_name))


def _lease_in(conn: Connection, lease: Lease, nbytes: int, nfiles: int,
              held_bytes: int) -> None:
    """Add this change to the lease, in the transaction that changes the
    counters (creating its row the first time). LeaseLost if it is gone."""
    params = {"lease_id": lease.id, "nbytes": int(nbytes), "nfiles": int(nfiles),
              "held_bytes": int(held_bytes), "expires_at": lease.expiry()}
    if lease.created:
        if conn.execute(_LEASE_ADD, params).rowcount != 1:
            raise LeaseLost("la reserva de esta subida ya se liberó")
        return
    conn.execute(insert(UploadLease).values(
        id=lease.id, space_id=lease.space_id, node=lease.node, pid=lease.pid,
        tmp_name=lease.tmp_name, used_bytes=int(nbytes), used_files=int(nfiles),
        held_bytes=int(held_bytes), expires_at=params["expires_at"]))


def renew(db: Database, lease: Lease) -> None:
    """Extend the lease while its upload streams. LeaseLost when it was
    given back meanwhile; UsageUnavailable when the database is away."""
    if not lease.created:
        return
    try:
        with db.engine.begin() as conn:
            n = conn.execute(update(UploadLease).where(UploadLease.id == lease.id)
                             .values(expires_at=lease.expiry())).rowcount
    except SQLAlchemyError as exc:
        raise UsageUnavailable(str(exc)) from exc
    if n != 1:
        raise LeaseLost("la reserva de esta subida ya se liberó")


@dataclass(frozen=True)
class Reclaimed:
    space_id: int
    used_bytes: int
    used_files: int
    held_bytes: int
    tmp_name: str


def reclaim(db: Database, lease_id: str) -> Reclaimed | None:
    """Give back what a lease holds (its row taken and its deltas undone in
    one transaction): None if another node or its own upload took it first."""
    with db.engine.begin() as conn:
        row = conn.execute(_LEASE_TAKE, {"lease_id": lease_id}).one_or_none()
        if row is None:
            return None
        got = Reclaimed(int(row[0]), int(row[1]), int(row[2]), int(row[3]), str(row[4]))
        apply_in(conn, got.space_id, -got.used_bytes, -got.used_files,
                 held_bytes=-got.held_bytes)
    return got


def leases(db: Database, *, expired_before: Any = None) -> list[Any]:
    """Rows (id, space_id, node, pid, tmp_name, expires_at, name) of every lease, or
    of those that expired before ``expired_before``."""
    q = (select(UploadLease.id, UploadLease.space_id, UploadLease.node, UploadLease.pid,
                UploadLease.tmp_name, UploadLease.expires_at, Space.name)
         .join(Space, Space.id == UploadLease.space_id))
    if expired_before is not None:
        q = q.where(UploadLease.expires_at < expired_before)
    with db.engine.connect() as conn:
        return list(conn.execute(q).all())


_USAGE = select(Space.used_bytes, Space.used_files, Space.quota_bytes, Space.held_bytes,
                Space.held_files, Space.reserve_bytes, Space.max_entries
                ).where(Space.id == bindparam("space_id"))


def usage(db: Database, space_id: int) -> Usage:
    """Current counters of a space. Raises UsageUnavailable if they can't be read."""
    try:
        with db.engine.connect() as conn:
            row = conn.execute(_USAGE, {"space_id": space_id}).one_or_none()
    except SQLAlchemyError as exc:
        log.error("usage unavailable for space %s: %s", space_id, exc)
        raise UsageUnavailable(str(exc)) from exc
    if row is None:
        raise NotFound("El espacio no existe.")
    return Usage(*(int(v) for v in row))


# Every write runs these: built once, so SQLAlchemy reuses their compiled form.
_DELTAS = {"used_bytes": Space.used_bytes + bindparam("nbytes"),
           "used_files": Space.used_files + bindparam("nfiles"),
           "held_bytes": Space.held_bytes + bindparam("held_bytes"),
           "held_files": Space.held_files + bindparam("held_files")}
_RESERVE = (update(Space)
            .where(Space.id == bindparam("space_id"))
            .where(Space.used_bytes + bindparam("nbytes") <= Space.quota_bytes)
            .where(Space.status == "active")
            # Entries: files and folders, in use or held (see reserve()).
            .where(or_(Space.max_entries <= 0, Space.used_files + Space.held_files
                       + bindparam("new_entries") <= Space.max_entries))
            .values(**_DELTAS))
#: ``new_entries`` of a write that adds no entry: passes whatever the count.
_NO_NEW_ENTRIES = -(2**62)
_APPLY = (update(Space)
          .where(Space.id == bindparam("space_id"))
          .values(**_DELTAS))


class _NotApplied(Exception):
    """The conditional delta did not apply: roll the transaction back."""


def reserve(db: Database, space_id: int, space_name: str, nbytes: int, nfiles: int = 0, *,
            held_bytes: int = 0, held_files: int = 0, needed: int | None = None,
            room: int = 0, at_least: bool = False, lease: Lease | None = None,
            end: bool = False) -> None:
    """Add ``nbytes``/``nfiles`` to the space's files only if they stay within its
    quota (and, in the same statement, ``held_bytes``/``held_files`` to its
    safety net: an overwrite whose old content becomes a version).

    ``nbytes`` may be 0 (an empty file or a folder): it is still refused when the
    space is already over its quota, because writes into a full space get 507.
    Raises QuotaExceeded (nothing changed) or UsageUnavailable. The refusal's
    message states what the file needs in all (``needed``, by default
    ``nbytes``; ``at_least`` when its end is not known yet) and what the plan
    has for it: the free room plus ``room``, the bytes the write already has
    on its side (its own reservation, the size of the file it replaces).

    With ``lease`` (an upload's) the change is recorded in the lease in the
    same transaction; with ``end`` too, the lease is taken instead (a commit:
    what it held becomes the file's) — LeaseLost, nothing changed, if it was
    given back meanwhile.
    """
    nbytes = max(int(nbytes), 0)
    if nbytes > MAX_DELTA:
        # No space holds this much; an absurd declared length must not reach
        # the database (its integers stop at 2**63).
        _refuse(db, space_id, space_name, nbytes, needed, room, at_least)
    try:
        with db.engine.begin() as conn:
            if lease is not None and end and lease.created and conn.execute(
                    _LEASE_TAKE, {"lease_id": lease.id}).one_or_none() is None:
                raise LeaseLost("la reserva de esta subida ya se liberó")
            result = conn.execute(_RESERVE, {
                "space_id": space_id, "nbytes": nbytes, "nfiles": int(nfiles),
                "held_bytes": held_bytes, "held_files": held_files,
                "new_entries": (int(nfiles) + max(int(held_files), 0) if nfiles > 0
                                else _NO_NEW_ENTRIES)})
            if result.rowcount != 1:
                raise _NotApplied  # undoes the lease's taking too
            if lease is not None and not end:
                _lease_in(conn, lease, nbytes, nfiles, held_bytes)
        applied = True
        if lease is not None:
            lease.created = not end
    except _NotApplied:
        applied = False
    except SQLAlchemyError as exc:
        log.error("quota reserve failed for %s: %s", space_name, exc)
        raise UsageUnavailable(str(exc)) from exc
    if not applied:
        status = _status(db, space_id)
        if status != "active":
            log.info("write refused: space=%s status=%s", space_name, status)
            raise ReadOnlySpace(status)
        now = usage(db, space_id)
        if (nfiles > 0 and now.max_entries > 0
                and now.used_files + now.held_files + nfiles > now.max_entries):
            log.info("entries refused: space=%s used=%d held=%d limit=%d requested=%d",
                     space_name, now.used_files, now.held_files, now.max_entries, nfiles)
            raise EntryLimitReached(space_name, now.max_entries, now.held_files)
        _refuse(db, space_id, space_name, nbytes, needed, room, at_least)


def check_entries(db: Database, space_id: int, space_name: str, nfiles: int) -> None:
    """Refuse (EntryLimitReached) before anything is written when ``nfiles`` new
    entries (a COPY of a tree) would pass the plan's max_entries. Each entry is
    counted again as it is made."""
    now = usage(db, space_id)
    if now.max_entries > 0 and now.used_files + now.held_files + nfiles > now.max_entries:
        log.info("entries refused: space=%s used=%d held=%d limit=%d requested=%d (copy)",
                 space_name, now.used_files, now.held_files, now.max_entries, nfiles)
        raise EntryLimitReached(space_name, now.max_entries, now.held_files)


def _refuse(db: Database, space_id: int, space_name: str, nbytes: int, needed: int | None,
            room: int, at_least: bool) -> None:
    now = usage(db, space_id)
    log.info("quota refused: space=%s used=%d limit=%d requested=%d needed=%s room=%d",
             space_name, now.used_bytes, now.quota_bytes, nbytes, needed, room)
    raise QuotaExceeded(space_name, nbytes if needed is None else needed,
                        now.available_bytes + room, now.quota_bytes, at_least=at_least)


def apply(db: Database, space_id: int, nbytes: int, nfiles: int = 0, *,
          held_bytes: int = 0, held_files: int = 0, lease: Lease | None = None,
          end: bool = False) -> bool:
    """Apply an unconditional delta (frees, credits, releases of reservations,
    moves between the files and the safety net).

    With ``lease`` and ``end`` (an upload's release, or its commit) the lease
    is taken in the same transaction, and nothing is applied if it is gone
    already (it was given back: applying would count the release twice).

    Never raises for a database error: it is logged and False returned. An
    upload's lease then stays, and is given back when it expires
    (:func:`reclaim`); other deltas wait for a recount.
    """
    if not (nbytes or nfiles or held_bytes or held_files) and not (
            lease is not None and lease.created):
        return True
    try:
        with db.engine.begin() as conn:
            if lease is not None and lease.created:
                if end:
                    if conn.execute(_LEASE_TAKE, {"lease_id": lease.id}).one_or_none() is None:
                        lease.created = False
                        log.info("upload lease already given back: space=%s lease=%s",
                                 space_id, lease.id)
                        return True
                else:
                    _lease_in(conn, lease, nbytes, nfiles, held_bytes)
            apply_in(conn, space_id, nbytes, nfiles, held_bytes=held_bytes,
                     held_files=held_files)
        if lease is not None and end:
            lease.created = False
        return True
    except SQLAlchemyError as exc:
        if lease is not None and lease.created:
            log.error("quota release postponed for space %s (%+d bytes, %+d files): %s — "
                      "the upload's lease %s is given back when it expires", space_id,
                      nbytes, nfiles, exc.__class__.__name__, lease.id)
        else:
            log.error("quota delta lost for space %s (%+d bytes, %+d files, %+d held bytes, "
                      "%+d held files): %s — run 'resguardo quota recount'", space_id,
                      nbytes, nfiles, held_bytes, held_files, exc)
        return False


def apply_in(conn: Connection, space_id: int, nbytes: int, nfiles: int = 0, *,
             held_bytes: int = 0, held_files: int = 0) -> None:
    """:func:`apply` inside the caller's transaction (with the row that says why)."""
    conn.execute(_APPLY, {"space_id": space_id, "nbytes": int(nbytes), "nfiles": int(nfiles),
                          "held_bytes": int(held_bytes), "held_files": int(held_files)})


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
    #: The same for the safety net (trash and earlier versions).
    before_held_bytes: int = 0
    before_held_files: int = 0
    after_held_bytes: int = 0
    after_held_files: int = 0

    @property
    def bytes(self) -> int:
        return self.after_bytes - self.before_bytes

    @property
    def files(self) -> int:
        return self.after_files - self.before_files

    @property
    def held_bytes(self) -> int:
        return self.after_held_bytes - self.before_held_bytes

    @property
    def held_files(self) -> int:
        return self.after_held_files - self.before_held_files

    @property
    def any(self) -> bool:
        return bool(self.bytes or self.files or self.held_bytes or self.held_files)


def property_bytes(db: Database, space_name: str) -> int:
    """What the space's WebDAV dead properties count toward its usage: names
    and values in UTF-8 (see davserver.properties)."""
    base = f"{DAV_MOUNT}/{space_name}"
    with db.engine.connect() as conn:
        rows = conn.execute(select(DeadProperty.name, DeadProperty.value).where(
            or_(DeadProperty.path == base, below(DeadProperty.path))), below_params(base))
        return sum(len(n.encode("utf-8")) + len(v.encode("utf-8")) for n, v in rows)


#: Folders beside a space's ``files`` that hold its safety net (deleted items
#: and earlier versions, see spaces.files.trash, spaces.files.versions): counted in ``held``.
HELD_AREAS = ("trash", "versions")


def measure_space(store: Store, files_root: Path) -> tuple[int, int, int, int]:
    """(used bytes, used entries, held bytes, held entries) on disk: the tree
    under ``files_root`` and the trees of its sibling HELD_AREAS, as the store
    measures them (:meth:`spaces.files.store.PosixStore.measure`)."""
    nbytes, nfiles = store.measure(files_root)
    held_bytes = held_files = 0
    for area in HELD_AREAS:
        more_bytes, more_files = store.measure(files_root.parent / area)
        held_bytes += more_bytes
        held_files += more_files
    return nbytes, nfiles, held_bytes, held_files


def recount(db: Database, store: Store, space_id: int, space_name: str,
            files_root: Path) -> Drift:
    """Walk the space's files (``used``) and its trash and versions, the siblings
    of ``files_root`` (``held``), and set its counters to what is on disk
    (``used`` also counts the bytes of the space's WebDAV dead properties).

    The only absolute write of the counters. Safe while uploads stream: what
    they hold is read from their leases in the transaction that sets the
    counters. Call it under the space's guard (spaces.files.guard.space_guard), so
    that no commit renames a file into place during the walk.
    """
    nbytes, nfiles, held_bytes, held_files = measure_space(store, files_root)
    nbytes += property_bytes(db, space_name)  # the plan counts its properties too
    in_flight = (select(func.coalesce(func.sum(UploadLease.used_bytes), 0),
                        func.coalesce(func.sum(UploadLease.used_files), 0),
                        func.coalesce(func.sum(UploadLease.held_bytes), 0))
                 .where(UploadLease.space_id == space_id))
    with db.engine.begin() as conn:
        # The space's row first (PostgreSQL: locked; SQLite: the write lock),
        # then the uploads in flight: a reservation committed before is in
        # both, one made after waits and adds to what is set here.
        if db.is_sqlite:
            conn.execute(update(Space).where(Space.id == space_id)
                         .values(used_bytes=Space.used_bytes))
        row = conn.execute(_USAGE.with_for_update() if not db.is_sqlite else _USAGE,
                           {"space_id": space_id}).one()
        before = Usage(*(int(v) for v in row))
        lease_bytes, lease_files, lease_held = (int(v) for v in conn.execute(in_flight).one())
        nbytes, nfiles, held_bytes = (nbytes + lease_bytes, nfiles + lease_files,
                                      held_bytes + lease_held)
        conn.execute(update(Space).where(Space.id == space_id).values(
            used_bytes=nbytes, used_files=nfiles, held_bytes=held_bytes,
            held_files=held_files))
    drift = Drift(space_name, before.used_bytes, before.used_files, nbytes, nfiles,
                  before.held_bytes, before.held_files, held_bytes, held_files)
    if drift.any:
        log.warning("quota recount: space=%s drift=%+d bytes %+d files, held %+d bytes "
                    "%+d files", space_name, drift.bytes, drift.files, drift.held_bytes,
                    drift.held_files)
    return drift


def as_dict(u: Usage) -> dict[str, Any]:
    """The counters as the API, the CLI and the portal name them."""
    return {"used_bytes": u.used_bytes, "used_files": u.used_files,
            "quota_bytes": u.quota_bytes, "available_bytes": u.available_bytes,
            "reserve_bytes": u.reserve_bytes, "reserve_used_bytes": u.held_bytes,
            "reserve_used_files": u.held_files}
