"""The file core: every operation that changes the files of a space.

Every change to what is stored goes through :class:`SpaceFiles` (writes,
folders, deletes, moves, copies, a LOCK's empty file), which keeps the usage
counters in step through :mod:`spaces.files.quota`. The WebDAV drive, the
portal and any sweep share these functions (built by
:func:`spaces.access.files.space_files`), so quota and protection rules hold
on every path.

Each change runs in a fixed order: the policies it was built with are asked
first (before-write, before-delete, before-replace, before-move: CFDI
retention may refuse), then what is replaced or deleted is disposed of
(versions claim a save-by-rename, otherwise the trash), the change is made,
the policies are told (after-store, after-move, after-delete: the CFDI
index), and the audit log records it. See :mod:`spaces.files.policy`.

A delete is a rename into the space's ``trash``; an overwrite keeps the old
content in ``versions`` (see :mod:`spaces.files.trash` and
:mod:`spaces.files.versions`). The plan counts current files only (a delete
frees it at once, an overwrite is credited with the old size); the trash and
versions live in the space's reserve, outside the plan, trimmed oldest first
when full (:func:`spaces.files.trash.make_room`). Where things are, what is at
a path and the one erase are :class:`spaces.files.folder.SpaceFolder`'s; an
upload in progress is :class:`spaces.files.upload.Upload`.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from spaces.core import audit, metrics
from spaces.core.errors import (
    AlreadyExists,
    Forbidden,
    NotFound,
    QuotaExceeded,
    SpaceError,
)
from spaces.core.models import TrashItem, utcnow
from spaces.files import diskspace, quota, shares, trash, versions
from spaces.files.entries import DeleteResult, DiskFull, Entry
from spaces.files.folder import SpaceFolder
from spaces.files.layout import is_temporary_name
from spaces.files.names import check_new_name, check_no_twin
from spaces.files.placeholders import ADD_PLACEHOLDER, TAKE_PLACEHOLDERS
from spaces.files.policy import Kept
from spaces.files.store import is_disk_full
from spaces.files.upload import Upload

log = logging.getLogger(__name__)


class SpaceFiles(SpaceFolder):
    """Operations on the files of one space. Cheap to build: one per request."""

    def open_upload(self, rel: str, declared: int | None, *, exact: bool = False) -> Upload:
        """Start replacing (or creating) the file at ``rel``.

        With a declared length the whole growth is reserved before any byte is
        read (QuotaExceeded → 507 before the body is stored); without one the
        reservation grows while the body streams and the write is refused at the
        block that crosses the quota. With ``exact`` (a Content-Length), a body
        that ends short — the client went away — is never committed.
        """
        target = self.resolve(rel)
        if target == self.root:
            raise Forbidden("No se puede escribir sobre la raíz del espacio.")
        check_new_name(target.name)
        self.check_depth(target)
        if self.entry(target) is None:  # a new name: refused before any byte is read
            check_no_twin(self.store, target.parent, target.name)
        self.before_write(self.index_path(target))
        try:
            return Upload(self, target, declared, exact=exact,
                          drop_placeholder=self.drop_placeholder)
        except SpaceError:
            self.drop_placeholder(rel)  # a LOCK's empty file, refused its first write
            raise

    def create_empty(self, rel: str, lock_root: str) -> None:
        """Create an empty file for a LOCK on a new name (counts as one file): a
        placeholder (:class:`~spaces.core.models.LockPlaceholder`) until its first
        write, removed by :meth:`drop_placeholder` when none comes.
        ``lock_root``: how the drive names the lock it is for."""
        p = self.resolve(rel)
        check_new_name(p.name)
        self.check_depth(p)
        self.check_disk(0)
        with self.guard():
            if self.entry(p) is not None:
                raise AlreadyExists("Ya existe un elemento con ese nombre.")
            check_no_twin(self.store, p.parent, p.name)
            quota.reserve(self.db, self.space_id, self.space_name, 0, 1)
            try:
                inode = self.store.create_empty(p).inode
            except OSError as exc:
                quota.apply(self.db, self.space_id, 0, -1)
                if is_disk_full(exc):
                    raise DiskFull(self.space_name) from exc
                raise
            with self.db.engine.begin() as c:
                c.execute(ADD_PLACEHOLDER, {"space_id": self.space_id,
                                             "path": self.index_path(p), "inode": inode,
                                             "lock_root": lock_root,
                                             "created_at": utcnow()})

    def drop_placeholder(self, rel: str) -> bool:
        """Remove the empty file a LOCK created at ``rel`` if it was never
        written (same inode, still empty): its write was refused or its lock
        ended. Returns True if a file was removed. Forgets the placeholder
        either way. Never raises for a path that is gone or not a placeholder."""
        try:
            p = self.resolve(rel)
            index_rel = self.index_path(p)
            with self.guard():
                with self.db.engine.begin() as c:
                    rows = c.execute(TAKE_PLACEHOLDERS, {"space_id": self.space_id,
                                                          "path": index_rel}).all()
                e = self.entry(p) if rows else None
                if e is None or e.is_dir or e.size != 0 or e.inode not in {r[0] for r in rows}:
                    return False  # none, or written (or replaced) since: a real file now
                self.store.unlink(p)
                quota.apply(self.db, self.space_id, 0, -1)
        except (SpaceError, SQLAlchemyError, OSError) as exc:
            # Called on failure paths: never turn their answer into another error.
            log.warning("lock placeholder not removed: space=%s path=%s: %s",
                        self.space_name, rel, exc)
            return False
        log.info("lock placeholder removed (never written): space=%s path=%s",
                 self.space_name, index_rel)
        return True

    def make_folder(self, rel: str) -> None:
        """MKCOL: a folder counts as one file."""
        p = self.resolve(rel)
        check_new_name(p.name)
        self.check_depth(p)
        self.check_disk(0)
        with self.guard():
            if self.entry(p) is None:
                check_no_twin(self.store, p.parent, p.name)
            quota.reserve(self.db, self.space_id, self.space_name, 0, 1)
            try:
                self.store.mkdir(p)
            except FileExistsError:
                quota.apply(self.db, self.space_id, 0, -1)
                raise AlreadyExists("Ya existe un elemento con ese nombre.") from None
            except OSError as exc:
                quota.apply(self.db, self.space_id, 0, -1)
                if is_disk_full(exc):
                    raise DiskFull(self.space_name) from exc
                raise
        self.record_event(audit.Action.MKDIR, self.index_path(p))

    def delete(self, rel: str) -> DeleteResult:
        """Delete the file or folder (recursively) at ``rel``: into the trash.

        The one path every delete takes (drive, portal, sweeps). A protected
        CFDI is never deleted: deleting it alone is refused (Forbidden, with
        the date), and a folder that holds protected CFDI loses everything
        else while the protected files and the folders leading to them stay
        (listed in the result's ``kept``).

        What is deleted is renamed (atomically, same filesystem) into the
        space's trash with a :class:`~spaces.core.models.TrashItem` row: it leaves
        the plan at once and enters the reserve (trash and versions, outside
        the plan), whose oldest content is erased to make room
        (:func:`spaces.files.trash.make_room`); what is larger than the whole reserve
        is erased at once instead of kept. One exception: a file an editor
        renamed away to a temporary name during a save-by-rename (see
        :meth:`move`) becomes a version of the document whose place it left,
        when that document exists again.
        """
        p = self.resolve(rel)
        if p == self.root:
            raise Forbidden("No se puede borrar la raíz del espacio.")
        diskspace.rescue(self.settings)  # a full disk must not stop a delete
        kept_in_trash = True
        with self.guard():
            e = self.entry(p)
            if e is None:
                raise NotFound("No existe.")
            index_rel = self.index_path(p)
            # 1. before-delete: a policy refuses (a protected CFDI), or names
            #    what stays below a folder.
            kept = self.before_delete(index_rel, is_dir=e.is_dir)
            # 2. dispose: versions claim a save-by-rename, otherwise the trash.
            if not e.is_dir:
                origin = versions.take_trail(self, index_rel)
                if origin is not None and trash.make_room(self, e.size):
                    versions.keep_renamed_away(self, p, e, origin)
                    # 3. after-delete, then the audit log.
                    self.after_delete(index_rel, is_dir=False)
                    shares.deleted(self.db, self.space_id, index_rel)
                    self.record_event(audit.Action.DELETE, index_rel, size=e.size,
                                      detail=f"versión de {origin}")
                    return DeleteResult(e.size, 1, [])
            if not kept:
                nbytes, nfiles = (e.size, 1) if not e.is_dir else self.tree_size(p)
                kept_in_trash = trash.make_room(self, nbytes)
                item = trash.put(self, p, index_rel, e.is_dir, nbytes, nfiles)
                shares.deleted(self.db, self.space_id, index_rel)
                self.after_delete(index_rel, is_dir=e.is_dir)
            else:
                item, nbytes, nfiles = self._trash_around(p, index_rel, kept)
                stay = frozenset(k.path for k in kept)
                shares.deleted(self.db, self.space_id, index_rel,
                               _with_parents(set(stay), index_rel))
                metrics.RETENTION_PROTECTIONS.inc(len(kept))
                self.after_delete(index_rel, is_dir=True, kept=stay)
                # Already in the safety net: make room around it, or erase it.
                kept_in_trash = trash.make_room(self, nbytes, leaving=nbytes,
                                                spare_item=item.id)
            if not kept_in_trash:
                trash.erase_item(self, item)
            if e.is_dir:  # a file's trail was taken above
                versions.forget_trails(self, index_rel)
        if kept_in_trash:
            detail = (f"a la papelera; {len(kept)} CFDI protegidos se quedan" if kept
                      else "a la papelera")
        else:
            detail = ("eliminado definitivamente: es más grande que toda la reserva de "
                      "papelera y versiones" + (f"; {len(kept)} CFDI protegidos se quedan"
                                                if kept else ""))
        self.record_event(audit.Action.DELETE, index_rel, size=nbytes, detail=detail)
        log.info("deleted: space=%s path=%s bytes=%d files=%d kept=%d trash=%s",
                 self.space_name, rel, nbytes, nfiles, len(kept), kept_in_trash)
        return DeleteResult(nbytes, nfiles, kept)

    def _trash_around(self, p: Path, index_rel: str,
                      protections: list[Kept]) -> tuple[TrashItem, int, int]:
        """Trash a folder that holds protected CFDI: everything else moves, one
        rename per entry, into a mirror of the folder in the trash; the
        protected files and the folders leading to them stay. The mirror's
        folders are new held entries. Returns (item, bytes, entries) trashed;
        the caller then makes room for them in the reserve."""
        keep_files = {os.path.join(str(self.root), pr.path.lstrip("/")) for pr in protections}
        keep_dirs: set[str] = set()
        for kf in keep_files:
            d = os.path.dirname(kf)
            while len(d) >= len(str(p)):
                keep_dirs.add(d)
                d = os.path.dirname(d)
        item = trash.put(self, None, index_rel, True, 0, 1)
        dest_root = self.trash_root / item.token
        moved_bytes = moved_files = 0
        made_dirs = 1  # the mirror of ``p`` itself, made by trash.put
        store = self.store
        try:
            stack = [(str(p), dest_root)]
            while stack:
                src_dir, dst_dir = stack.pop()
                for name in sorted(store.listdir(src_dir)):
                    sp = os.path.join(src_dir, name)
                    if sp in keep_files:
                        continue
                    if sp in keep_dirs:
                        store.mkdir(dst_dir / name)
                        made_dirs += 1
                        stack.append((sp, dst_dir / name))
                        continue
                    st = store.lstat(sp)
                    if stat.S_ISDIR(st.st_mode):
                        nbytes, count = store.measure(Path(sp))
                        count += 1
                    elif stat.S_ISREG(st.st_mode):
                        nbytes, count = st.st_size, 1
                    else:
                        nbytes, count = 0, 0
                    store.rename(Path(sp), dst_dir / name)
                    moved_bytes += nbytes
                    moved_files += count
        finally:
            # What moved left the plan for the safety net; the mirror's folders
            # (but the first, counted by trash.put) are new held entries.
            quota.apply(self.db, self.space_id, -moved_bytes, -moved_files,
                        held_bytes=moved_bytes, held_files=moved_files + made_dirs - 1)
            trash.set_size(self, item.id, moved_bytes, moved_files + made_dirs)
        item.size, item.files = moved_bytes, moved_files + made_dirs
        return item, moved_bytes, moved_files + made_dirs

    def move(self, src_rel: str, dst_rel: str, *, replace: bool = False) -> None:
        """Rename inside the space.

        Everything is decided before anything changes, under the space's lock:
        the source and the destination are not one item (Forbidden: the same
        name in another Unicode spelling is the same item), the destination is
        not inside the source, the new name obeys the name rules (no twin of a
        sibling, except the source's own: a name may change its case), the
        policies allow the move (no document leaves a legal hold that covers
        it) and — with ``replace`` — the replacement of what the destination
        holds (never a protected CFDI, in the destination or anywhere below
        it): Forbidden, nothing touched.

        Without ``replace`` an existing destination is AlreadyExists. With it,
        a file onto a file keeps the destination's content as a version of it
        (Excel's save-by-rename: MOVE of the new temporary file over the
        document) and usage does not change; any other destination (a folder,
        or a file a folder replaces) goes to the trash first, as a DELETE
        would, and the rename follows.

        A file renamed to a temporary name (``~WRL0002.tmp``) leaves a trail, so
        that deleting it later makes it a version of the document that took
        its place; otherwise a file's versions follow it to its new name.
        """
        src = self.resolve(src_rel)
        dst = self.resolve(dst_rel)
        if src == self.root:
            raise Forbidden("No se puede mover la raíz del espacio.")
        if dst == self.root:
            raise Forbidden("No se puede reemplazar la raíz del espacio.")
        if src == dst:
            raise Forbidden("El origen y el destino son el mismo elemento.")
        if dst.is_relative_to(src):
            raise Forbidden("No se puede mover una carpeta dentro de sí misma.")
        if src.is_relative_to(dst):
            raise Forbidden("No se puede reemplazar una carpeta con algo que está dentro de ella.")
        check_new_name(dst.name)
        with self.guard():
            se = self.entry(src)
            if se is None:
                raise NotFound("El origen ya no existe.")
            if not se.is_dir:
                self.check_depth(dst)
            elif (len(dst.parts) > len(src.parts)
                  or self.dav_key_length(dst) > self.dav_key_length(src)):
                self.check_depth(dst, self.extent(src))  # deeper or longer: does it all fit?
            de = self.entry(dst)
            src_index, dst_index = self.index_path(src), self.index_path(dst)
            if de is not None and (de.inode == se.inode
                                   and self.store.same_file(src, dst)):
                raise Forbidden("El origen y el destino son el mismo elemento.")
            if de is None:  # a new name; it may change the case of the source's own
                check_no_twin(self.store, dst.parent, dst.name, besides=src)
            elif not replace:
                raise AlreadyExists("El destino ya existe.")
            else:
                self.before_replace(dst_index)
            self.before_move(src_index, dst_index)
            detail = None
            if de is None:
                try:
                    self.store.rename(src, dst)
                except FileNotFoundError:  # gone meanwhile (a concurrent MOVE or DELETE)
                    raise NotFound("El origen ya no existe.") from None
            elif not de.is_dir and not se.is_dir:
                versions.replace_keeping(self, src, dst, de)
                shares.deleted(self.db, self.space_id, dst_index)  # replaced: over
                self.after_delete(dst_index, is_dir=False)
                detail = "reemplaza al destino (queda como versión)"
            else:
                detail = "reemplaza al destino (" + (
                    "a la papelera)" if self._replace_by_rename(src, dst, de, dst_index)
                    else "eliminado: más grande que la reserva)")
            self.after_move(src_index, dst_index)
            if not se.is_dir and is_temporary_name(dst.name) and not is_temporary_name(src.name):
                versions.leave_trail(self, dst_index, src_index)
            else:
                versions.moved(self, src_index, dst_index)
            shares.moved(self.db, self.space_id, src_index, dst_index)
        self.record_event(audit.Action.MOVE, src_index, dest=dst_index, size=se.size,
                          detail=detail)

    def _replace_by_rename(self, src: Path, dst: Path, de: Entry, dst_index: str
                           ) -> bool:
        """Under the guard, once allowed: put the destination ``dst`` into the
        trash as a DELETE would (into the reserve, room made there; erased at
        once when larger than the whole reserve) and rename ``src`` to its
        place. If the rename fails, the destination comes back as it was.
        Returns whether the replaced destination is kept in the trash."""
        nbytes, nfiles = (de.size, 1) if not de.is_dir else self.tree_size(dst)
        kept_in_trash = trash.make_room(self, nbytes)
        item = trash.put(self, dst, dst_index, de.is_dir, nbytes, nfiles)
        try:
            self.store.rename(src, dst)
        except BaseException:
            trash.take_back(self, item, dst)
            raise
        if not kept_in_trash:
            trash.erase_item(self, item)
        shares.deleted(self.db, self.space_id, dst_index)
        self.after_delete(dst_index, is_dir=de.is_dir)
        versions.forget_trails(self, dst_index)
        self.record_event(audit.Action.DELETE, dst_index, size=nbytes,
                          detail="reemplazado por un MOVE: " + (
                              "a la papelera" if kept_in_trash else
                              "eliminado definitivamente, es más grande que toda la reserva"))
        return kept_in_trash

    def check_copy_over(self, src_rel: str, dst_rel: str) -> None:
        """Before a COPY with ``Overwrite: T`` onto the existing ``dst_rel``
        touches anything: Forbidden if the destination (or anything below it)
        is a protected CFDI, or if it is the source itself or holds it (a copy
        over its own folder would delete the source before copying it)."""
        src, dst = self.resolve(src_rel), self.resolve(dst_rel)
        if src == dst or dst.is_relative_to(src) or src.is_relative_to(dst):
            raise Forbidden("No se puede copiar un elemento sobre sí mismo ni sobre la "
                            "carpeta que lo contiene.")
        self.before_replace(self.index_path(dst))

    def copy_file(self, src_rel: str, dst_rel: str) -> None:
        """Copy one file, replacing the destination file if any (quota-checked,
        atomic like an upload; the replaced content becomes a version)."""
        src = self.resolve(src_rel)
        e = self.entry(src)
        if e is None or e.is_dir:
            raise NotFound("El origen no existe.")
        up = self.open_upload(dst_rel, e.size, exact=True)
        up.copied_from = self.index_path(src)
        try:
            try:
                fh = self.store.open_read(src)
            except FileNotFoundError:  # gone meanwhile (a concurrent MOVE or DELETE)
                raise NotFound("El origen ya no existe.") from None
            with fh:
                while True:
                    buf = fh.read(1024 * 1024)
                    if not buf:
                        break
                    up.write(buf)
        except BaseException:
            up.abort()
            raise
        up.commit(mtime=e.mtime)

    def copy_fits(self, src_rel: str, dst_rel: str, *, extra_bytes: int = 0) -> None:
        """Refuse a COPY whose whole source tree (with ``extra_bytes``: its
        WebDAV properties) does not fit in the space's plan (QuotaExceeded), in
        its entries (EntryLimitReached) or in its depth (InvalidName), before
        copying anything. What it replaces leaves the plan (into the trash, or
        as a version), so its size is credited."""
        src = self.resolve(src_rel)
        se = self.entry(src)
        self.check_depth(self.resolve(dst_rel),
                         self.extent(src) if se is not None and se.is_dir else (0, 0))
        nbytes, nfiles = self.tree_size(src)
        quota.check_entries(self.db, self.space_id, self.space_name, nfiles)
        self.check_disk(nbytes)
        nbytes += extra_bytes
        replaced, _ = self.tree_size(self.resolve(dst_rel))
        now = quota.usage(self.db, self.space_id)
        if nbytes - replaced > now.available_bytes or now.used_bytes > now.quota_bytes:
            log.info("quota refused: space=%s used=%d limit=%d requested=%d replaced=%d "
                     "(copy)", self.space_name, now.used_bytes, now.quota_bytes, nbytes,
                     replaced)
            raise QuotaExceeded(self.space_name, nbytes, now.available_bytes + replaced,
                                now.quota_bytes)



def _with_parents(paths: set[str], top: str) -> frozenset[str]:
    """``paths`` and every folder above them up to ``top`` (included)."""
    out = set(paths)
    for path in paths:
        d = path.rsplit("/", 1)[0]
        while len(d) >= len(top) and d:
            out.add(d)
            d = d.rsplit("/", 1)[0]
    return frozenset(out)
