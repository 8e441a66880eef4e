"""Earlier versions of the files of a space.

When a file's content is replaced — a PUT over it, a COPY or MOVE onto it, or
Office's save-by-rename (the document renamed to a temporary name, the new one
renamed into place, the temporary deleted) — the previous content is kept in
``<data_dir>/spaces/<name>/versions/<token>`` with a
:class:`spaces.core.models.FileVersion` row naming the file it belongs to. At most
``[versions] keep`` versions per file are kept, none older than
``[versions] max_days``; empty files leave no version.

Versions live in the space's reserve with the trash, outside the plan: an
overwrite needs room in the plan only for what the new content adds to the
old. Before a version is kept, :func:`spaces.files.trash.make_room` erases the
oldest versions (then the oldest trash items) until it fits in the reserve; a
content larger than the whole reserve is not kept. Versions are also the first
thing :func:`spaces.files.trash.reclaim` erases when an admin frees space. A
version follows its file when the file is renamed or moved.
"""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import bindparam, delete, insert, select

from spaces.core import audit
from spaces.core.db import path_move_params, path_mover
from spaces.core.errors import Forbidden, NotFound
from spaces.core.models import FileVersion, RenameTrail, utcnow
from spaces.files import quota, trash
from spaces.files.entries import Entry
from spaces.files.folder import SpaceFolder
from spaces.files.layout import new_token
from spaces.files.names import check_new_name, check_no_twin
from spaces.files.trash import Freed, erase_version

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VersionEntry:
    """One earlier version of a file."""

    id: int
    #: The file it is a version of ('/Clientes/libro.xlsx').
    path: str
    size: int
    #: The content's modification time (seconds since the epoch).
    mtime: float
    #: When it was replaced (became a version).
    created_at: datetime
    #: Who replaced it.
    created_by: str | None


def _entry(r: FileVersion) -> VersionEntry:
    return VersionEntry(r.id, r.path, r.size, r.mtime, r.created_at, r.created_by)


def list_versions(files: SpaceFolder, rel: str) -> list[VersionEntry]:
    """The versions of the file at ``rel``, newest first (empty if none)."""
    path = files.index_path(files.resolve(rel))
    with files.db.session() as s:
        rows = s.scalars(select(FileVersion).where(FileVersion.space_id == files.space_id,
                                                   FileVersion.path == path)
                         .order_by(FileVersion.created_at.desc(), FileVersion.id.desc()))
        return [_entry(r) for r in rows]


def _row(files: SpaceFolder, version_id: int) -> FileVersion:
    with files.db.session() as s:
        row = s.scalar(select(FileVersion).where(FileVersion.id == version_id,
                                                 FileVersion.space_id == files.space_id))
    if row is None:
        raise NotFound("Esa versión ya no existe.")
    return row


def get_version(files: SpaceFolder, version_id: int) -> VersionEntry:
    """One version of this space (NotFound otherwise)."""
    return _entry(_row(files, version_id))


def open_version(files: SpaceFolder, version_id: int) -> tuple[VersionEntry, BinaryIO]:
    """The version and its content opened for reading (the caller closes it).
    Raises NotFound if it is not a version of this space."""
    row = _row(files, version_id)
    try:
        fh = files.store.open_read(files.versions_root / row.token)
    except FileNotFoundError:
        raise NotFound("Esa versión ya no existe.") from None
    return _entry(row), fh


def restore_version(files: SpaceFolder, version_id: int, by: str | None = None) -> str:
    """Make the version the current content of its file again and return the
    file's path. The current content is kept as a version first (restoring is
    itself undoable), in the reserve like any version. The plan then counts
    the restored content instead of the current one: QuotaExceeded (507,
    nothing changed) if it grows beyond the plan. A missing file is recreated
    (missing folders too). Forbidden if the current file is a protected CFDI
    or a folder."""
    # The policies look at the restored content before the space's lock (a
    # huge stamped CFDI takes a while to read); a version's file never changes.
    early = _row(files, version_id)
    prepared = files.prepare(files.versions_root / early.token, Path(early.path).name)
    with files.guard():
        row = _row(files, version_id)
        src = files.versions_root / row.token
        if files.entry(src) is None:
            _drop(files, row.id)
            raise NotFound("Esa versión ya no existe.")
        target = files.resolve(row.path)
        e = files.entry(target)
        if e is not None and e.is_dir:
            raise Forbidden("Ahora hay una carpeta con ese nombre; no se restauró la versión.")
        if e is not None and files.store.same_file(src, target):
            # Not an earlier content but the current file itself (a hard link an
            # old self-MOVE left): restoring would change nothing; forget it.
            erase_version(files, row)
            raise NotFound("Esa versión es el contenido actual del archivo; no había nada "
                           "que restaurar.")
        if e is None:  # recreated: a new name, under the name rules
            check_new_name(target.name)
            check_no_twin(files.store, target.parent, target.name)
        else:
            files.before_write(row.path)
        current = e.size if e is not None else 0
        # The plan: the version's content instead of the current one (one more
        # entry when the file is recreated); the reserve: the version leaves it.
        growth, new_entry = row.size - current, int(e is None)
        if growth > 0 or new_entry:
            quota.reserve(files.db, files.space_id, files.space_name, max(growth, 0),
                          new_entry, held_bytes=-row.size, held_files=-1,
                          needed=row.size, room=current)
        else:
            quota.apply(files.db, files.space_id, growth, held_bytes=-row.size, held_files=-1)
        kept = None
        try:
            if e is None:
                files.ensure_parents(target)
            elif files.keeps_version_of(e.size) and trash.make_room(
                    files, e.size, spare_version=row.id):
                kept = link_current(files, target, e)
            files.store.replace(src, target, durable=False)
        except BaseException:
            if kept is not None:
                unlink_kept(files, kept)
            quota.apply(files.db, files.space_id, -growth, -new_entry, held_bytes=row.size,
                        held_files=1)
            raise
        _drop(files, row.id)
        if kept is not None:
            quota.apply(files.db, files.space_id, 0, 0, held_bytes=current, held_files=1)
        files.after_store(target, new=False,
                          prepared=prepared if row.token == early.token else None)
        prune(files, row.path)
    files.record_event(audit.Action.VERSION_RESTORE, row.path, size=row.size,
                 detail=f"versión del {row.created_at:%Y-%m-%d %H:%M} UTC")
    log.info("version restored: space=%s path=%s version=%d by=%s", files.space_name,
             row.path, row.id, by or files.actor_name)
    return row.path


def delete_version(files: SpaceFolder, version_id: int, by: str | None = None) -> Freed:
    """Erase one version for good (an admin's choice)."""
    with files.guard():
        row = _row(files, version_id)
        freed = erase_version(files, row)
    files.record_event(audit.Action.VERSION_PURGE, row.path, size=freed.bytes,
                 detail=f"eliminada por {by or files.actor_name or 'el sistema'}")
    return freed


# -- used by spaces.files.storage and spaces.files.upload (under the space's guard) ---------

def _drop(files: SpaceFolder, version_id: int) -> None:
    with files.db.session() as s:
        s.execute(delete(FileVersion).where(FileVersion.id == version_id))


#: Every overwrite runs it: built once.
_ADD = insert(FileVersion).returning(FileVersion.id)


def _add_row(files: SpaceFolder, path: str, e: Entry) -> FileVersion:
    files.store.mkdir(files.versions_root, parents=True, exist_ok=True)
    values = {"space_id": files.space_id, "token": new_token(), "path": path, "size": e.size,
              "mtime": e.mtime, "created_at": utcnow(), "created_by": files.actor_name}
    with files.db.engine.begin() as c:
        version_id = c.execute(_ADD, values).scalar_one()
    return FileVersion(id=version_id, **values)


def link_current(files: SpaceFolder, target: Path, e: Entry) -> FileVersion:
    """Keep the current content of ``target`` as a version: a hard link in
    ``versions`` (the file stays in place; its replacement then gets a new
    inode). The caller made room for it in the reserve and accounts for it
    (held +size, +1 entry)."""
    row = _add_row(files, files.index_path(target), e)
    kept = files.versions_root / row.token
    try:
        try:
            files.store.link(target, kept)
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            # A data folder on a filesystem without hard links (some network
            # shares): copy the content instead, slower but the same result.
            files.store.copy(target, kept)
    except BaseException:
        files.store.unlink(kept, missing_ok=True)
        _drop(files, row.id)
        raise
    return row


#: What ``link`` answers where a filesystem has no hard links (or no more for this file).
_NO_HARD_LINKS = frozenset({errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EOPNOTSUPP,
                            errno.EMLINK, errno.ENOSYS})


def unlink_kept(files: SpaceFolder, row: FileVersion) -> None:
    """Undo :func:`link_current` (the replacement failed; accounting is the caller's)."""
    files.store.unlink(files.versions_root / row.token, missing_ok=True)
    _drop(files, row.id)


def replace_keeping(files: SpaceFolder, src: Path, dst: Path, de: Entry) -> None:
    """Rename file ``src`` over file ``dst``, keeping ``dst``'s content as a
    version (or erasing it when versions are off, it is empty or it is larger
    than the whole reserve). Either way ``dst``'s content leaves the plan.
    Forbidden when both are one file (another spelling of the same name): a
    version hard-linked to the current file would be no earlier content at all."""
    if files.store.same_file(src, dst):
        raise Forbidden("El origen y el destino son el mismo elemento.")
    if files.keeps_version_of(de.size) and trash.make_room(files, de.size):
        kept = link_current(files, dst, de)
        try:
            files.store.replace(src, dst, durable=False)
        except BaseException:
            unlink_kept(files, kept)
            raise
        quota.apply(files.db, files.space_id, -de.size, -1, held_bytes=de.size, held_files=1)
        prune(files, files.index_path(dst))
        return
    files.store.replace(src, dst, durable=False)
    quota.apply(files.db, files.space_id, -de.size, -1)


#: Every overwrite runs it: built once. The versions of a path beyond the newest ``keep``.
_BEYOND_KEEP = (select(FileVersion.id, FileVersion.token, FileVersion.path)
                .where(FileVersion.space_id == bindparam("sid"),
                       FileVersion.path == bindparam("path"))
                .order_by(FileVersion.created_at.desc(), FileVersion.id.desc())
                .offset(bindparam("keep")))


def prune(files: SpaceFolder, path: str) -> None:
    """Erase the versions of ``path`` beyond ``[versions] keep``, oldest first."""
    with files.db.engine.connect() as c:
        rows = c.execute(_BEYOND_KEEP, {"sid": files.space_id, "path": path,
                                        "keep": files.settings.versions.keep}).all()
    for row in rows:
        erase_version(files, row)


#: Every MOVE runs it: built once; it names the paths it moved versions to.
_MOVE_VERSIONS = (path_mover(FileVersion, FileVersion.space_id == bindparam("sid"))
                  .returning(FileVersion.path))


def moved(files: SpaceFolder, src: str, dst: str) -> None:
    """A file or folder was renamed: its versions (and those of everything
    below it) follow, joining any the new name already had (then pruned to
    ``[versions] keep``)."""
    with files.db.engine.begin() as c:
        touched = set(c.execute(_MOVE_VERSIONS, {"sid": files.space_id,
                                                 **path_move_params(src, dst)}).scalars())
    for path in sorted(touched):
        prune(files, path)


#: Built once (every delete of a file takes its trail): SQLAlchemy then skips building and
#: compiling them again, which cost more than running them.
_FORGET_TRAILS = delete(RenameTrail).where(RenameTrail.space_id == bindparam("space_id"),
                                           RenameTrail.path == bindparam("path"))
_TAKE_TRAILS = _FORGET_TRAILS.returning(RenameTrail.id, RenameTrail.origin)
_LEAVE_TRAIL = insert(RenameTrail)


def leave_trail(files: SpaceFolder, path: str, origin: str) -> None:
    """File ``origin`` was renamed to the temporary name ``path``."""
    with files.db.engine.begin() as c:
        c.execute(_FORGET_TRAILS, {"space_id": files.space_id, "path": path})
        c.execute(_LEAVE_TRAIL, {"space_id": files.space_id, "path": path, "origin": origin,
                                 "created_at": utcnow()})


def forget_trails(files: SpaceFolder, path: str) -> None:
    with files.db.engine.begin() as c:
        c.execute(_FORGET_TRAILS, {"space_id": files.space_id, "path": path})


def take_trail(files: SpaceFolder, path: str) -> str | None:
    """The file at ``path`` is being deleted: forget the trail it left, if any,
    and if it was renamed there away from a document that now exists again as
    a file (a save-by-rename in progress), return that document. A trail is a
    hint: once taken it is gone, even if the delete then fails (that file then
    goes to the trash like any other)."""
    with files.db.engine.begin() as c:
        rows = c.execute(_TAKE_TRAILS, {"space_id": files.space_id, "path": path}).all()
    if not rows or files.settings.versions.keep <= 0:
        return None
    origin = max(rows)[1]  # the newest
    try:
        e = files.entry(files.resolve(origin))
    except Exception:  # noqa: BLE001 - a trail is a hint: when in doubt, the trash
        return None
    return origin if e is not None and not e.is_dir else None


def keep_renamed_away(files: SpaceFolder, p: Path, e: Entry, origin: str) -> None:
    """Make the file ``p`` (being deleted) a version of ``origin``: one rename
    into ``versions``, from the plan into the reserve (the caller made room)."""
    row = _add_row(files, origin, e)
    try:
        files.store.rename(p, files.versions_root / row.token)
    except BaseException:
        _drop(files, row.id)
        raise
    quota.apply(files.db, files.space_id, -e.size, -1, held_bytes=e.size, held_files=1)
    prune(files, origin)
    log.info("save-by-rename: space=%s %s kept as a version of %s", files.space_name,
             files.index_path(p), origin)
