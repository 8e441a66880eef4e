"""An upload in progress: a file streaming into the space's ``tmp``, counted
byte by byte against the plan, that replaces its target only at its commit.

:meth:`Upload.write` reserves room as the body arrives (with a lease, so a
crash gives it back), :meth:`Upload.commit` lets the policies prepare (the
CFDI examination) outside the space's guard and then, under it, asks them
before the write, charges the final size, keeps the old content as a version,
puts the new one in place in one atomic rename and tells them after the
store; :meth:`Upload.abort` leaves no trace. Built by
:meth:`spaces.files.storage.SpaceFiles.open_upload`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

from spaces.core import audit
from spaces.core.errors import Forbidden, InvalidName, QuotaExceeded, UsageUnavailable
from spaces.files import quota, trash, versions
from spaces.files.entries import DiskFull, IncompleteUpload
from spaces.files.folder import SpaceFolder
from spaces.files.layout import NODE, upload_name
from spaces.files.names import check_no_twin
from spaces.files.policy import HEAD_BYTES
from spaces.files.store import is_disk_full

log = logging.getLogger(__name__)

#: Reservation growth step for uploads of unknown length (chunked bodies).
RESERVE_STEP = 4 * 2**20

#: While an upload streams, every this many bytes are handed to the kernel's
#: writeback, so the fsync before commit finds little left to write.
WRITEBACK_STEP = 8 * 2**20


class Upload:
    """A file being written: streams into ``tmp``, counted byte by byte, and
    replaces its target only in :meth:`commit`. :meth:`abort` leaves no trace."""

    def __init__(self, files: SpaceFolder, target: Path, declared: int | None, *,
                 exact: bool = False, drop_placeholder: Callable[[str], bool]) -> None:
        """``drop_placeholder``: removes a LOCK's empty file at a path when the
        upload is aborted (see :meth:`spaces.files.storage.SpaceFiles.drop_placeholder`)."""
        self.files = files
        self._drop_placeholder = drop_placeholder
        self.target = target
        self.expected = declared if exact else None
        self.written = 0
        #: Bytes already handed to the disk's writeback (see PosixStore.start_writeback).
        self._synced = 0
        self.reserved = 0
        #: Entries reserved: 1 for a new file, so its commit usually has nothing left to count.
        self.reserved_files = 0
        self.head = b""
        #: What the policies made of the content before the commit's lock.
        self._prepared: list[Any] | None = None
        self._done = False
        #: The file this upload copies (a COPY), for the audit log.
        self.copied_from: str | None = None
        existing = files.entry(target)
        if existing is not None and existing.is_dir:
            raise Forbidden("Ya existe una carpeta con ese nombre.")
        self.old_size = existing.size if existing else 0
        if declared is not None and declared < 0:
            raise InvalidName("Longitud de contenido no válida.")
        self.declared = declared
        #: Bytes of the replaced content the new one may reuse (the overwrite's
        #: credit): the old content leaves the plan for the reserve as soon as
        #: the upload starts, since both are on disk until the commit. None when
        #: it is larger than the whole reserve: then the plan holds both.
        self.credit = 0
        new = int(existing is None)
        files.check_disk(declared or 0)
        self.tmp_name = upload_name()
        #: Who holds this upload's reservation, until when (see quota.Lease).
        self.lease = quota.Lease(files.space_id, NODE, os.getpid(), self.tmp_name,
                                 files.settings.storage.lease_seconds)
        self._renewed = time.monotonic()
        if self.old_size > 0:
            with files.guard():
                fits = self.old_size <= quota.usage(files.db, files.space_id).reserve_bytes
                credit = self.old_size if fits else 0
                # Reserve what the declared length adds (and move the old content's
                # bytes from the plan to the reserve), then make room there.
                growth = max((declared or 0) - credit, 0)
                quota.reserve(files.db, files.space_id, files.space_name, growth, new,
                              held_bytes=credit, needed=declared or 0, room=credit,
                              lease=self.lease)
                self.reserved, self.reserved_files, self.credit = growth, new, credit
                if credit:
                    try:
                        trash.make_room(files, credit, leaving=credit)
                    except BaseException:
                        self._release()  # no upload, no reservation
                        raise
        else:
            # Reserve what the declared length adds (0 still checks the space is writable).
            growth = max(declared or 0, 0)
            quota.reserve(files.db, files.space_id, files.space_name, growth, new,
                          needed=declared or 0, lease=self.lease)
            self.reserved, self.reserved_files = growth, new
        try:
            files.store.mkdir(files.tmp, parents=True, exist_ok=True)
            self.tmp_path = files.tmp / self.tmp_name
            self._fh: BinaryIO = files.store.create_exclusive(self.tmp_path)
        except OSError as exc:
            self._release()
            if is_disk_full(exc):
                raise DiskFull(files.space_name) from exc
            raise

    def _release(self) -> None:
        """Give the reservation back with its lease (if the database is away
        the lease stays and is given back when it expires)."""
        if self.reserved or self.reserved_files or self.credit or self.lease.created:
            quota.apply(self.files.db, self.files.space_id, -self.reserved,
                        -self.reserved_files, held_bytes=-self.credit, lease=self.lease,
                        end=True)
            self.reserved = self.reserved_files = self.credit = 0

    def _renew(self, *, now: bool = False) -> None:
        """Extend the lease while the body streams (every third of its
        length), or ``now``. LeaseLost if it was given back meanwhile."""
        t = time.monotonic()
        if now or t - self._renewed >= max(self.lease.seconds / 3, 1):
            self._renewed = t
            try:
                quota.renew(self.files.db, self.lease)
            except quota.LeaseLost:
                raise
            except UsageUnavailable:
                if now:
                    raise
                # A database blip while the body streams: the lease has two
                # more thirds to run; try again at the next third.
                log.warning("upload lease not renewed (database unavailable): space=%s "
                            "path=%s", self.files.space_name, self.target.name)

    def write(self, data: bytes) -> int:
        n = len(data)
        self._renew()
        need = self.written + n - self.credit - self.reserved
        if need > 0:
            f = self.files
            f.check_disk(max(need, RESERVE_STEP))
            try:
                quota.reserve(f.db, f.space_id, f.space_name, max(need, RESERVE_STEP),
                              lease=self.lease)
                self.reserved += max(need, RESERVE_STEP)
            except QuotaExceeded:
                # The refusal states the real figures: all the file needs so far
                # (at least) against the free room plus what this upload holds.
                so_far = self.written + n
                quota.reserve(f.db, f.space_id, f.space_name, need,
                              needed=max(so_far, self.declared or 0),
                              room=self.reserved + self.credit,
                              at_least=self.expected is None and so_far >= (self.declared or 0),
                              lease=self.lease)
                self.reserved += need
        if len(self.head) < HEAD_BYTES:
            self.head += data[: HEAD_BYTES - len(self.head)]
        self._write_all(data)
        self.written += n
        if self.written - self._synced >= WRITEBACK_STEP:
            self.files.store.start_writeback(self._fh.fileno(), self._synced,
                                             self.written - self._synced)
            self._synced = self.written
        return n

    def writelines(self, chunks: Iterable[bytes]) -> None:
        for chunk in chunks:
            self.write(chunk)

    def _write_all(self, data: bytes) -> None:
        """Write every byte of ``data`` or raise: the file is unbuffered, and a
        raw write may store only part of its bytes (a disk filling up takes
        what fits and says so only by the count). DiskFull (507) when the
        disk takes no more."""
        try:
            self.files.store.write_all(self._fh, data)
        except OSError as exc:
            if is_disk_full(exc):
                log.warning("disk full: space=%s path=%s written=%d",
                            self.files.space_name, self.target.name, self.written)
                raise DiskFull(self.files.space_name) from exc
            raise

    def close(self) -> None:
        """Flush to disk (the commit happens in :meth:`commit`)."""
        if not self._fh.closed:
            try:
                self._fh.flush()
                self.files.store.sync(self._fh)
            except OSError as exc:
                if is_disk_full(exc):
                    raise DiskFull(self.files.space_name) from exc
                raise
            finally:
                self._fh.close()

    def commit(self, mtime: float | None = None) -> bool:
        """Account for the final size and atomically replace the target.

        Returns True if the target was created (False if replaced). If what it
        replaces changed meanwhile, the difference is charged conditionally
        (QuotaExceeded → nothing replaced).
        """
        f = self.files
        try:
            if self.expected is not None and self.written != self.expected:
                log.warning("incomplete upload dropped: space=%s path=%s got=%d of %d",
                            f.space_name, self.target.name, self.written, self.expected)
                raise IncompleteUpload(
                    f"La transferencia se interrumpió ({self.written} de {self.expected} "
                    "bytes); no se guardó nada y la versión anterior sigue intacta.")
            self.close()
            if mtime is not None:
                f.store.set_mtime(self.tmp_path, mtime)
            # What the new content is, read before the space's lock: a stamped
            # CFDI of hundreds of megabytes takes a while to parse, and the
            # temporary file is this upload's alone (the lock only records it).
            self._prepared = f.prepare(self.tmp_path, self.target.name, self.head)
            with f.guard():
                existing = f.entry(self.target)
                if existing is not None and existing.is_dir:
                    raise Forbidden("Ya existe una carpeta con ese nombre.")
                old_now = existing.size if existing else 0
                new_file = existing is None
                try:
                    self._renew(now=True)  # and nobody gives it back while we commit
                except quota.LeaseLost:
                    # Given back while the upload stalled: it holds nothing now,
                    # so the whole file is charged below (conditionally).
                    log.warning("upload lease lost before commit: space=%s path=%s",
                                f.space_name, self.target.name)
                    self.reserved = self.reserved_files = self.credit = 0
                    self.lease.created = False
                if new_file:  # a twin may have arrived while the body streamed
                    check_no_twin(self.files.store, self.target.parent, self.target.name)
                if existing is not None:  # it may have become a protected CFDI meanwhile
                    f.before_write(f.index_path(self.target))
                # The plan counts the new content instead of the old one; the
                # reserve lets go of the old content's bytes it held meanwhile.
                extra = (self.written - old_now) - self.reserved
                more_files = int(new_file) - self.reserved_files
                if extra > 0:
                    quota.reserve(f.db, f.space_id, f.space_name, extra, more_files,
                                  held_bytes=-self.credit, needed=self.written,
                                  room=self.reserved + old_now, lease=self.lease, end=True)
                elif not quota.apply(f.db, f.space_id, extra, more_files,
                                     held_bytes=-self.credit, lease=self.lease, end=True):
                    raise UsageUnavailable("no se pudo registrar el uso")
                accounted, counted_files = self.reserved + extra, self.reserved_files + more_files
                self.reserved = self.reserved_files = self.credit = 0
                keep, kept = False, None
                try:
                    # The old content goes to the reserve as a version, if it fits there.
                    keep = (existing is not None and f.keeps_version_of(old_now)
                            and trash.make_room(f, old_now))
                    if keep and existing is not None:
                        kept = versions.link_current(f, self.target, existing)
                    f.store.replace(self.tmp_path, self.target, durable=False)
                except BaseException:
                    quota.apply(f.db, f.space_id, -accounted, -counted_files)
                    if kept is not None:
                        versions.unlink_kept(f, kept)
                    raise
                f.store.sync_folder(self.target.parent)  # the new name is durable too
                if keep:
                    quota.apply(f.db, f.space_id, 0, 0, held_bytes=old_now, held_files=1)
                # Under the guard, so a protection is recorded before anyone
                # can delete the file.
                f.after_store(self.target, new=new_file, head=self.head,
                              prepared=self._prepared)
                if keep:
                    versions.prune(f, f.index_path(self.target))
        except OSError as exc:
            self.abort()
            if is_disk_full(exc):
                log.warning("disk full at commit: space=%s path=%s bytes=%d",
                            f.space_name, self.target.name, self.written)
                raise DiskFull(f.space_name) from exc
            raise
        except BaseException:
            self.abort()
            raise
        self._done = True
        log.info("stored: space=%s path=%s bytes=%d replaced=%d",
                 f.space_name, self.target.relative_to(f.root), self.written, old_now)
        rel = f.index_path(self.target)
        if self.copied_from is not None:
            f.record_event(audit.Action.COPY, self.copied_from, dest=rel, size=self.written)
        else:
            f.record_event(audit.Action.UPLOAD if new_file else audit.Action.OVERWRITE, rel,
                     size=self.written,
                     detail=f"versión anterior guardada ({old_now} bytes)" if keep else None)
        return new_file

    def abort(self) -> None:
        """Drop the temporary file and release the reservation; the target is untouched."""
        if self._done:
            return
        self._done = True
        try:
            self._fh.close()
        except OSError:
            pass
        self.files.store.unlink(self.tmp_path, missing_ok=True)
        self._release()
        # A LOCK's empty file whose first write failed does not stay behind.
        self._drop_placeholder(self.files.index_path(self.target))
