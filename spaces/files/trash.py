"""The trash bin of a space: deleted files and folders, restorable for a while.

Layout: ``<data_dir>/spaces/<name>/trash/<token>`` is one deleted file or folder
(renamed there in one atomic ``rename`` from ``files/``: same filesystem), with
a :class:`spaces.core.models.TrashItem` row saying where it was, when, by whom and
what it holds. The trash sits outside ``files/``, so the drive never lists it.

Accounting: the plan counts current files only. A delete into the trash moves
the item's bytes and entries from the space's ``used`` counters to its
``held`` ones (the safety net: trash and earlier versions), which live in the
space's *reserve*, outside the plan. Before anything enters the safety net,
:func:`make_room` erases the oldest versions and then the oldest trash items
until it fits in the reserve; what is larger than the whole reserve is not
kept at all. So a write never fails because of the trash, and a space's disk
use never passes its quota plus its reserve. ``resguardo quota recount``
measures ``files`` (used) and ``trash`` + ``versions`` (held).

CFDI: a protected CFDI never reaches the trash (its delete is refused, or it
stays in place when its folder is deleted), so nothing here can destroy one.

Every function takes the :class:`spaces.files.folder.SpaceFolder` of one space
(the actor in ``files.actor``, the policies a restore runs), runs its change
under the space's guard, and raises the domain errors of
:mod:`spaces.core.errors` (NotFound, Forbidden, QuotaExceeded). The reserve is
this module's: :func:`make_room` and :func:`reclaim` erase the oldest versions
too (:func:`erase_version`), so :mod:`spaces.files.versions` stands on it and
not the other way round.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Row, bindparam, delete, func, insert, select, update

from spaces.core import audit
from spaces.core.db import Database
from spaces.core.errors import NotFound
from spaces.core.models import FileVersion, TrashItem, utcnow
from spaces.files import quota
from spaces.files.folder import SpaceFolder
from spaces.files.layout import new_token
from spaces.files.names import check_new_name, check_no_twin, twin_in

log = logging.getLogger(__name__)

#: The Spanish suffix of a restored item whose name was taken meanwhile.
RESTORED = "restaurado"


@dataclass(frozen=True)
class TrashEntry:
    """One item of a space's trash, as the web drive shows it."""

    id: int
    #: Where it was ('/Clientes/factura.xlsx').
    path: str
    #: Its name (the last segment of ``path``).
    name: str
    is_dir: bool
    #: Bytes it holds (the whole tree for a folder).
    size: int
    #: Files and folders it holds (itself included).
    files: int
    trashed_at: datetime
    trashed_by: str | None
    #: When the sweep erases it (``trashed_at`` + ``[trash] days``).
    expires_at: datetime


@dataclass(frozen=True)
class Freed:
    """What an erase gave back to the space."""

    bytes: int
    files: int
    #: How many trash items and versions were erased.
    items: int

    def __add__(self, other: Freed) -> Freed:
        return Freed(self.bytes + other.bytes, self.files + other.files,
                     self.items + other.items)


@dataclass(frozen=True)
class Held:
    """What a space's safety net holds, by kind (from its rows; the counters
    ``Space.held_bytes``/``held_files`` hold the total)."""

    trash_bytes: int
    trash_items: int
    versions_bytes: int
    versions: int

    @property
    def bytes(self) -> int:
        return self.trash_bytes + self.versions_bytes


def held(db: Database, space_id: int) -> Held:
    """Bytes and items in the space's trash and in its earlier versions (from
    their rows: two aggregate queries, no walk)."""
    with db.engine.connect() as c:
        tb, tn = c.execute(select(func.coalesce(func.sum(TrashItem.size), 0), func.count())
                           .where(TrashItem.space_id == space_id)).one()
        vb, vn = c.execute(select(func.coalesce(func.sum(FileVersion.size), 0), func.count())
                           .where(FileVersion.space_id == space_id)).one()
    return Held(int(tb), int(tn), int(vb), int(vn))


def list_trash(files: SpaceFolder) -> list[TrashEntry]:
    """The space's trash, newest first."""
    days = timedelta(days=files.settings.trash.days)
    with files.db.session() as s:
        rows = list(s.scalars(select(TrashItem).where(TrashItem.space_id == files.space_id)
                              .order_by(TrashItem.trashed_at.desc(), TrashItem.id.desc())))
    return [_entry(r, days) for r in rows]


def _entry(r: TrashItem, days: timedelta) -> TrashEntry:
    return TrashEntry(r.id, r.path, r.path.rsplit("/", 1)[-1], r.is_dir, r.size, r.files,
                      r.trashed_at, r.trashed_by, r.trashed_at + days)


def get_item(files: SpaceFolder, item_id: int) -> TrashEntry:
    """One item of this space's trash (NotFound otherwise)."""
    return _entry(_row(files, item_id), timedelta(days=files.settings.trash.days))


def _row(files: SpaceFolder, item_id: int) -> TrashItem:
    with files.db.session() as s:
        row = s.scalar(select(TrashItem).where(TrashItem.id == item_id,
                                               TrashItem.space_id == files.space_id))
    if row is None:
        raise NotFound("Ese elemento ya no está en la papelera.")
    return row


def restore_from_trash(files: SpaceFolder, item_id: int, by: str | None = None) -> str:
    """Put a trash item back where it was and return the path it now has.

    If that name is taken, the item comes back as "nombre (restaurado).ext"
    ("nombre (restaurado 2).ext", ...). Missing parent folders are created again
    (each counts as one entry). The item leaves the reserve and counts in the
    plan again: refused with QuotaExceeded (507, nothing changed) when it does
    not fit. Raises NotFound if the item is not in this space's trash.
    """
    # What comes back is examined for CFDI before the space's lock: a huge
    # stamped CFDI, or a folder of thousands, takes a while to read.
    early = _row(files, item_id)
    prepared = files.prepare(files.trash_root / early.token, Path(early.path).name)
    with files.guard():
        row = _row(files, item_id)
        src = files.trash_root / row.token
        if files.entry(src) is None:
            _drop(files.db, row.id)
            raise NotFound("Ese elemento ya no está en la papelera.")
        target = files.resolve(row.path)
        check_new_name(target.name)
        quota.reserve(files.db, files.space_id, files.space_name, row.size, row.files,
                      held_bytes=-row.size, held_files=-row.files)
        try:
            files.ensure_parents(target)
            target = _free_name(files, target)
            check_new_name(target.name)
            # the space's lock is held: still true
            check_no_twin(files.store, target.parent, target.name)
            files.store.rename(src, target)
        except BaseException:
            quota.apply(files.db, files.space_id, -row.size, -row.files,
                        held_bytes=row.size, held_files=row.files)
            raise
        _drop(files.db, row.id)
        rel = files.index_path(target)
        _restored(files, target, prepared if row.token == early.token else None)
    files.record_event(audit.Action.TRASH_RESTORE, row.path, dest=rel, size=row.size)
    log.info("restored from trash: space=%s path=%s as=%s by=%s", files.space_name,
             row.path, rel, by or files.actor_name)
    return rel


def _free_name(files: SpaceFolder, target: Path) -> Path:
    """``target``, or "name (restaurado).ext", "name (restaurado 2).ext", ... if taken
    (by that name or by a twin Windows cannot tell from it)."""
    def free(p: Path) -> bool:
        return files.entry(p) is None and twin_in(files.store, p.parent, p.name) is None

    if free(target):
        return target
    name = target.name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    n = 1
    while True:
        tag = RESTORED if n == 1 else f"{RESTORED} {n}"
        candidate = target.with_name(f"{stem} ({tag})" + (f".{ext}" if ext else ""))
        if free(candidate):
            return candidate
        n += 1


def _restored(files: SpaceFolder, target: Path, prepared: list[Any] | None = None) -> None:
    """Tell the policies about every file that came back, whatever its name (the
    CFDI index forgot them when deleted; a stamped CFDI is protected again from
    now on). ``prepared``: what they made of the item before the lock."""
    info = files.store.info(target)
    paths = [target] if info is not None and not info.is_dir else [
        Path(d) / n for d, _, names in files.store.walk(target) for n in names]
    for p in paths:
        if not files.store.is_link(p):
            files.after_store(p, new=True, prepared=prepared, root=target)


def delete_from_trash(files: SpaceFolder, item_id: int, by: str | None = None) -> Freed:
    """Erase one trash item for good (an admin's choice); returns what was freed."""
    with files.guard():
        row = _row(files, item_id)
        freed = erase_item(files, row)
    files.record_event(audit.Action.TRASH_PURGE, row.path, size=freed.bytes,
                 detail=f"eliminado por {by or files.actor_name or 'el sistema'}")
    return freed


def erase_item(files: SpaceFolder, row: TrashItem) -> Freed:
    """Erase one trash item for good (under the guard): files first, then its row."""
    nbytes, nfiles = files.erase(files.trash_root / row.token)
    _drop(files.db, row.id)
    return Freed(nbytes, nfiles, 1)


def _drop(db: Database, item_id: int) -> None:
    with db.session() as s:
        s.execute(delete(TrashItem).where(TrashItem.id == item_id))


def empty_trash(files: SpaceFolder, by: str | None = None) -> Freed:
    """Erase everything in the space's trash (an admin's choice)."""
    total = Freed(0, 0, 0)
    with files.guard():
        with files.db.session() as s:
            rows = list(s.scalars(select(TrashItem)
                                  .where(TrashItem.space_id == files.space_id)))
        for row in rows:
            total = total + erase_item(files, row)
    if total.items:
        files.record_event(audit.Action.TRASH_PURGE, "/", size=total.bytes,
                     detail=f"papelera vaciada: {total.items} elementos")
    log.info("trash emptied: space=%s items=%d bytes=%d by=%s", files.space_name,
             total.items, total.bytes, by or files.actor_name)
    return total


def reclaim(files: SpaceFolder, nbytes: int, by: str | None = None) -> Freed:
    """Free at least ``nbytes`` (if there is that much to free) by erasing the
    oldest file versions first, then the oldest trash items. Current files are
    never touched. Returns what was freed (possibly less than asked)."""
    total = Freed(0, 0, 0)
    with files.guard():
        with files.db.session() as s:
            vrows = list(s.scalars(select(FileVersion)
                                   .where(FileVersion.space_id == files.space_id)
                                   .order_by(FileVersion.created_at, FileVersion.id)))
            trows = list(s.scalars(select(TrashItem)
                                   .where(TrashItem.space_id == files.space_id)
                                   .order_by(TrashItem.trashed_at, TrashItem.id)))
        for v in vrows:
            if total.bytes >= nbytes:
                break
            total = total + erase_version(files, v)
        for t in trows:
            if total.bytes >= nbytes:
                break
            total = total + erase_item(files, t)
    if total.items:
        files.record_event(audit.Action.TRASH_PURGE, "/", size=total.bytes,
                     detail=f"espacio liberado: {total.items} versiones y elementos de la "
                            "papelera")
    log.info("reclaimed: space=%s asked=%d freed=%d items=%d by=%s", files.space_name,
             nbytes, total.bytes, total.items, by or files.actor_name)
    return total


def make_room(files: SpaceFolder, nbytes: int, *, leaving: int = 0,
              spare_version: int | None = None, spare_item: int | None = None) -> bool:
    """Make room in the space's reserve for ``nbytes`` about to enter its safety
    net (a deleted item, a replaced content), under the space's guard: the
    oldest versions are erased first, then the oldest trash items, until the
    safety net fits in the reserve (``leaving``: bytes leaving it in the same
    step, e.g. the version being restored; ``spare_*``: rows never erased).

    Returns False, erasing nothing, when ``nbytes`` alone is larger than the
    whole reserve: the caller then does not keep it. Never refuses a write.
    """
    now = quota.usage(files.db, files.space_id)
    if nbytes > now.reserve_bytes:
        log.info("too large for the reserve: space=%s bytes=%d reserve=%d", files.space_name,
                 nbytes, now.reserve_bytes)
        return False
    excess = now.held_bytes - leaving + nbytes - now.reserve_bytes
    if excess <= 0:
        return True
    freed = 0
    with files.db.engine.connect() as c:
        vrows = c.execute(_OLDEST_VERSIONS, {"sid": files.space_id}).all()
    for v in vrows:
        if freed >= excess:
            break
        if v.id == spare_version:
            continue
        freed += erase_version(files, v).bytes
        files.record_event(audit.Action.VERSION_PURGE, v.path, size=v.size,
                           detail=RESERVE_FULL)
    if freed < excess:
        with files.db.engine.connect() as c:
            trows = c.execute(_OLDEST_ITEMS, {"sid": files.space_id}).all()
        for t in trows:
            if freed >= excess:
                break
            if t.id == spare_item:
                continue
            nbytes_t, _ = files.erase(files.trash_root / t.token)
            _drop(files.db, t.id)
            freed += nbytes_t
            files.record_event(audit.Action.TRASH_PURGE, t.path, size=t.size,
                               detail=RESERVE_FULL)
    log.info("reserve made room: space=%s needed=%d freed=%d", files.space_name, excess, freed)
    return freed >= excess


#: The audit log's reason when the reserve erases its oldest content.
RESERVE_FULL = "la reserva de papelera y versiones se llenó: lo más antiguo se elimina solo"

_OLDEST_VERSIONS = (select(FileVersion.id, FileVersion.token, FileVersion.path,
                           FileVersion.size)
                    .where(FileVersion.space_id == bindparam("sid"))
                    .order_by(FileVersion.created_at, FileVersion.id))
_OLDEST_ITEMS = (select(TrashItem.id, TrashItem.token, TrashItem.path, TrashItem.size)
                 .where(TrashItem.space_id == bindparam("sid"))
                 .order_by(TrashItem.trashed_at, TrashItem.id))


def erase_version(files: SpaceFolder, row: FileVersion | Row[*tuple[Any, ...]]) -> Freed:
    """Erase one earlier version for good (under the guard): its file, then its row."""
    nbytes, nfiles = files.erase(files.versions_root / row.token)
    with files.db.session() as s:
        s.execute(delete(FileVersion).where(FileVersion.id == row.id))
    return Freed(nbytes, nfiles, 1)


# -- used by spaces.files.storage and versions (under the space's guard) ----------------

#: Built once: every delete runs it, and building it cost more than running it.
_PUT = insert(TrashItem).returning(TrashItem.id)


def put(files: SpaceFolder, p: Path | None, rel: str, is_dir: bool, nbytes: int,
        nfiles: int) -> TrashItem:
    """Move ``p`` into the trash: its row, and its ``nbytes``/``nfiles`` moved
    from the space's files to its safety net, in one transaction; then one
    atomic rename (a crash in between leaves a row without an item, which
    start-up drops, recounting the space). The caller made room for it
    (:func:`make_room`). With ``p`` None, an empty folder is made in the trash
    instead (one new held entry; the caller fills it and sets its size)."""
    files.store.mkdir(files.trash_root, parents=True, exist_ok=True)
    values = {"space_id": files.space_id, "token": new_token(), "path": rel, "is_dir": is_dir,
              "size": nbytes, "files": nfiles, "trashed_at": utcnow(),
              "trashed_by": files.actor_name}
    moved = (0, 0, 0, 1) if p is None else (-nbytes, -nfiles, nbytes, nfiles)
    with files.db.engine.begin() as c:
        item_id = c.execute(_PUT, values).scalar_one()
        quota.apply_in(c, files.space_id, moved[0], moved[1], held_bytes=moved[2],
                       held_files=moved[3])
    row = TrashItem(id=item_id, **values)
    try:
        if p is None:
            files.store.mkdir(files.trash_root / row.token)
        else:
            files.store.rename(p, files.trash_root / row.token)
    except BaseException:
        with files.db.engine.begin() as c:
            c.execute(delete(TrashItem).where(TrashItem.id == row.id))
            quota.apply_in(c, files.space_id, -moved[0], -moved[1], held_bytes=-moved[2],
                           held_files=-moved[3])
        raise
    return row


def take_back(files: SpaceFolder, item: TrashItem, to: Path) -> None:
    """Undo :func:`put` of a file or folder (a MOVE that replaced it failed
    right after): it is renamed back to ``to``, its row goes, and its bytes and
    entries return from the safety net to the space's files."""
    files.store.rename(files.trash_root / item.token, to)
    with files.db.engine.begin() as c:
        c.execute(delete(TrashItem).where(TrashItem.id == item.id))
        quota.apply_in(c, files.space_id, item.size, item.files, held_bytes=-item.size,
                       held_files=-item.files)


def set_size(files: SpaceFolder, item_id: int, nbytes: int, nfiles: int) -> None:
    with files.db.session() as s:
        s.execute(update(TrashItem).where(TrashItem.id == item_id)
                  .values(size=nbytes, files=nfiles))
