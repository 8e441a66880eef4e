"""The files of a space, and every operation that changes them.

Layout: ``<data_dir>/spaces/<name>/files`` is the drive's root and
``<data_dir>/spaces/<name>/tmp`` holds uploads in progress. Both live on the
same filesystem, so an upload streams into ``tmp`` and replaces its target
with one atomic ``rename``: a failed, aborted or refused write leaves the
previous version byte-identical and nothing behind. (They sit in a sibling
folder rather than next to the target so that listings never show them and a
restart clears them without walking the whole tree.) ``trash`` and
``versions``, siblings too, hold deleted items and earlier contents of files
(see :mod:`spaces.files.trash` and :mod:`spaces.files.versions`): a delete is a rename into
``trash``, an overwrite keeps the old content in ``versions``. The plan counts
current files only (a delete frees it at once, an overwrite is credited with
the old size); the trash and versions live in the space's reserve, outside the
plan, trimmed oldest first when full (:func:`spaces.files.trash.make_room`).
:meth:`SpaceFiles.erase` is the one function that destroys stored content for
good (trash expiry, emptying, version pruning, a full reserve).

Every operation that changes what is stored goes through :class:`SpaceFiles`,
which keeps the usage counters in step through :mod:`spaces.files.quota`. The WebDAV
drive, the portal and any sweep share these functions, so quota and protection
rules hold on every path.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import socket
import stat
import threading
import time
import unicodedata
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

from sqlalchemy import bindparam, delete, insert, select, text
from sqlalchemy.exc import SQLAlchemyError

from spaces.cfdi import index as cfdi_index
from spaces.cfdi import parse as cfdi
from spaces.cfdi import retention
from spaces.core import audit, metrics
from spaces.core.audit import Actor
from spaces.core.db import Database
from spaces.core.errors import (
    AlreadyExists,
    Forbidden,
    InvalidName,
    NotFound,
    QuotaExceeded,
    SpaceError,
    UsageUnavailable,
)
from spaces.core.models import (
    DAV_MOUNT,
    MAX_KEY_CHARS,
    LockPlaceholder,
    Space,
    TrashItem,
    utcnow,
)
from spaces.core.settings import Settings
from spaces.files import diskspace, quota, shares, trash, versions
from spaces.files.names import check_new_name, check_no_twin, split_rel
from spaces.files.store import PosixStore, is_disk_full

log = logging.getLogger(__name__)

#: Built once: a LOCK on a new name records its placeholder, a failed write takes it.
_ADD_PLACEHOLDER = insert(LockPlaceholder)
_TAKE_PLACEHOLDERS = (delete(LockPlaceholder)
                      .where(LockPlaceholder.space_id == bindparam("space_id"),
                             LockPlaceholder.path == bindparam("path"))
                      .returning(LockPlaceholder.inode))

#: Reservation growth step for uploads of unknown length (chunked bodies).
RESERVE_STEP = 4 * 2**20

#: This machine, in the names of its uploads' temporary files (several drive
#: nodes may share one data folder): "up-<node>-<pid>-<random>".
NODE = "".join(c if c.isalnum() else "_" for c in socket.gethostname())[:64] or "node"
#: A temporary file untouched this long belongs to no live upload (the server
#: times a silent connection out after 60 s), whichever node wrote it.
STALE_UPLOAD_SECONDS = 3600


def space_dir(settings: Settings, name: str) -> Path:
    return settings.data_path / "spaces" / name


def ensure_space_dirs(settings: Settings, name: str) -> None:
    base = space_dir(settings, name)
    for area in ("files", "tmp", "trash", "versions"):
        (base / area).mkdir(parents=True, exist_ok=True)


#: Names Office and other editors give the temporary files of a save-by-rename:
#: ``~WRL0002.tmp``, ``~$libro.xlsx``, ``doc.bak``, Excel's ``3A2B1C00``.
_TEMPORARY_NAME = re.compile(r"^(~.*|.*\.(tmp|bak|wbk)|[0-9A-Fa-f]{8})$", re.IGNORECASE)


def is_temporary_name(name: str) -> bool:
    """Whether ``name`` looks like an editor's temporary or backup file."""
    return bool(_TEMPORARY_NAME.match(name))


def new_token() -> str:
    """The name of one item under ``trash`` or ``versions``."""
    return os.urandom(16).hex()


# -- per-space write lock ----------------------------------------------------------

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
    import fcntl

    path = settings.data_path / "spaces" / f".space-{space_id}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise UsageUnavailable("space lock timeout") from None
                time.sleep(0.01)
        yield
    finally:
        os.close(fd)  # releases the flock


#: While an upload streams, every this many bytes are handed to the kernel's
#: writeback, so the fsync before commit finds little left to write.
WRITEBACK_STEP = 8 * 2**20


class DiskFull(QuotaExceeded):
    """The server's disk (not the plan) ran out of room: also 507."""

    reason = "disk"

    def __init__(self, space: str) -> None:
        Exception.__init__(
            self,
            "El servidor no tiene espacio en disco para guardar este archivo; no se "
            "modificó nada. Avise a su proveedor del servicio.",
        )
        self.space, self.needed, self.available, self.quota = space, 0, 0, 0


class IncompleteUpload(InvalidName):
    """The body ended before its declared length: never committed (400)."""


@dataclass(frozen=True)
class DeleteResult:
    freed_bytes: int
    freed_files: int
    #: Protected CFDI that stayed (and the folders leading to them).
    kept: list[retention.Protection]


@dataclass(frozen=True)
class Entry:
    """What is at a path of the space (never a symlink)."""

    path: Path
    is_dir: bool
    size: int
    mtime: float
    ctime: float
    inode: int
    mtime_ns: int


class SpaceFiles:
    """Operations on the files of one space. Cheap to build: one per request."""

    def __init__(self, settings: Settings, db: Database, space_id: int, space_name: str,
                 *, actor: Actor | None = None, max_depth: int = 0) -> None:
        """``max_depth``: the plan's, when the caller has read it already (the
        drive's credential query does); 0: read on first need."""
        self.settings = settings
        self.db = db
        self.space_id = space_id
        self.space_name = space_name
        #: Who is making the changes (for the audit log); None: the server itself.
        self.actor = actor
        base = space_dir(settings, space_name)
        self.root = base / "files"
        self.tmp = base / "tmp"
        self.trash_root = base / "trash"
        self.versions_root = base / "versions"
        #: Examine XML files for CFDI when they are stored.
        self.index_cfdi = True
        self._root_str = str(self.root)
        if max_depth > 0:
            self.__dict__["_max_depth"] = max_depth

    def check_disk(self, nbytes: int) -> None:
        """Refuse (DiskFull, 507) a write of ``nbytes`` more that would leave
        the server's disk below ``[storage] min_free``: that allowance is kept
        for the database, deletes and the trash (see :mod:`spaces.files.diskspace`)."""
        fits, disk = diskspace.has_room(self.settings, nbytes)
        if not fits:
            log.warning("disk allowance refused write: space=%s free=%d min_free=%d "
                        "requested=%d", self.space_name, disk.free_bytes, disk.min_free,
                        nbytes)
            raise DiskFull(self.space_name)

    def guard(self) -> Any:
        """This space's commit lock, across threads, processes and nodes."""
        return space_guard(self.settings, self.db, self.space_id)

    def keeps_version_of(self, size: int) -> bool:
        """Whether replacing content of ``size`` bytes keeps it as a version
        (versions on; an empty file leaves none)."""
        return size > 0 and self.settings.versions.keep > 0

    @property
    def actor_name(self) -> str | None:
        """The user the actor names (for trash and version rows), if any."""
        return self.actor.user if self.actor is not None else None

    def record_event(self, action: audit.Action, path: str | None, *,
                     dest: str | None = None, size: int | None = None,
                     detail: str | None = None) -> None:
        """Append this change to the audit log, after the fact (never raises)."""
        audit.record(self.db, self.space_id, action, actor=self.actor, path=path, dest=dest,
                     size=size, detail=detail, space_name=self.space_name)

    # -- paths ------------------------------------------------------------------
    def resolve(self, rel: str) -> Path:
        """The filesystem path of ``rel`` ("/a/b" inside the space).

        Names are normalised to Unicode NFC so that NFD and NFC spellings of one
        name are one file. Raises InvalidName for ``..``, NUL bytes or
        backslashes, and Forbidden when any existing component below the
        space's root is a symlink (the drive neither lists nor follows them,
        wherever they point). MUST NOT return a path outside the space's root:
        with no ``..``, no separator inside a name and no symlink, it cannot.

        Only the components below the root are examined (one lstat each, until
        the first that does not exist): the operator may keep the data folder
        behind a symlink, and a request should not pay to resolve it.
        """
        parts = split_rel(rel)
        at = self._root_str
        for part in parts:
            at = at + os.sep + part
            try:
                st = os.lstat(at)
            except OSError:  # absent (or unreachable): nothing below it exists either
                break
            if stat.S_ISLNK(st.st_mode):
                log.warning("symlink refused: space=%s path=%r", self.space_name, rel)
                raise Forbidden("La ruta está fuera de su espacio.")
        return self.root.joinpath(*parts)

    def entry(self, p: Path) -> Entry | None:
        """lstat ``p``; None if absent. Symlinks and special files are refused."""
        try:
            st = os.lstat(p)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                raise InvalidName("El nombre o la ruta es demasiado largo.") from None
            raise
        if stat.S_ISLNK(st.st_mode) or not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
            raise Forbidden("Este elemento no es un archivo ni una carpeta del espacio.")
        return Entry(p, stat.S_ISDIR(st.st_mode), st.st_size, st.st_mtime, st.st_ctime,
                     st.st_ino, st.st_mtime_ns)

    def list_dir(self, p: Path) -> list[tuple[str, os.stat_result]]:
        """Members of folder ``p`` with their lstat, in one directory scan; symlinks
        and special files are skipped."""
        out = []
        with os.scandir(p) as it:
            for e in it:
                try:
                    st = e.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode):
                    out.append((e.name, st))
        return out

    def tree_size(self, p: Path) -> tuple[int, int]:
        """(bytes, entries) of ``p`` itself and everything below it."""
        e = self.entry(p)
        if e is None:
            return 0, 0
        if not e.is_dir:
            return e.size, 1
        nbytes, count = quota.measure_tree(p)
        return nbytes, count + 1

    # -- limits --------------------------------------------------------------------
    @property
    def max_depth(self) -> int:
        """The plan's deepest path, in levels (read once per instance)."""
        known = self.__dict__.get("_max_depth")
        if known is None:
            try:
                with self.db.engine.connect() as c:
                    known = int(c.scalar(select(Space.max_depth)
                                         .where(Space.id == self.space_id)) or 0)
            except SQLAlchemyError as exc:
                raise UsageUnavailable(str(exc)) from exc
            self.__dict__["_max_depth"] = known
        return known

    def dav_key_length(self, p: Path) -> int:
        """The length of ``p``'s address on the drive ("/dav/<space>/...",
        URL-encoded), which keys its locks and properties; counted in NFD, the
        longest spelling a client may send."""
        rel = unicodedata.normalize("NFD", self.index_path(p))
        return len(quote(f"{DAV_MOUNT}/{self.space_name}{rel}"))

    def check_depth(self, p: Path, below: tuple[int, int] = (0, 0)) -> None:
        """Refuse (InvalidName, 400) a path ``p`` — with ``below`` (levels,
        encoded characters) more under it: a tree arriving there — deeper than
        the plan's max_depth, or whose address would be longer than the
        database keeps for its locks and properties (MAX_KEY_CHARS)."""
        depth = len(p.relative_to(self.root).parts) + below[0]
        limit = self.max_depth
        if limit > 0 and depth > limit:
            log.info("depth refused: space=%s path=%s depth=%d limit=%d", self.space_name,
                     self.index_path(p), depth, limit)
            raise InvalidName(f"La ruta tendría {depth} niveles de carpetas y este plan "
                              f"permite hasta {limit} niveles: use menos carpetas anidadas.")
        length = self.dav_key_length(p) + below[1]
        if length > MAX_KEY_CHARS:
            log.info("path length refused: space=%s path=%s length=%d", self.space_name,
                     self.index_path(p), length)
            raise InvalidName(f"La ruta es demasiado larga ({length} caracteres en la dirección "
                              f"de la unidad; el máximo es {MAX_KEY_CHARS}): use nombres o "
                              "carpetas más cortos.")

    @staticmethod
    def extent(p: Path) -> tuple[int, int]:
        """(levels, encoded characters) that lie below folder ``p``: how much
        deeper and longer its deepest and longest path is than ``p`` itself,
        never following symlinks."""
        levels = chars = 0
        for dirpath, dirnames, filenames in os.walk(p):
            rel = Path(dirpath).relative_to(p)
            for name in dirnames + filenames:
                sub = unicodedata.normalize("NFD", "/" + str(rel / name) if str(rel) != "."
                                            else "/" + name)
                levels = max(levels, sub.count("/"))
                chars = max(chars, len(quote(sub)))
        return levels, chars

    # -- writes -------------------------------------------------------------------
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
            check_no_twin(target.parent, target.name)
        retention.check_writable(self.db, self.space_id, self.index_path(target))
        try:
            return Upload(self, target, declared, exact=exact)
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
            check_no_twin(p.parent, p.name)
            quota.reserve(self.db, self.space_id, self.space_name, 0, 1)
            try:
                fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                inode = os.fstat(fd).st_ino
                os.close(fd)
            except OSError as exc:
                quota.apply(self.db, self.space_id, 0, -1)
                if is_disk_full(exc):
                    raise DiskFull(self.space_name) from exc
                raise
            with self.db.engine.begin() as c:
                c.execute(_ADD_PLACEHOLDER, {"space_id": self.space_id,
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
                    rows = c.execute(_TAKE_PLACEHOLDERS, {"space_id": self.space_id,
                                                          "path": index_rel}).all()
                e = self.entry(p) if rows else None
                if e is None or e.is_dir or e.size != 0 or e.inode not in {r[0] for r in rows}:
                    return False  # none, or written (or replaced) since: a real file now
                os.unlink(p)
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
                check_no_twin(p.parent, p.name)
            quota.reserve(self.db, self.space_id, self.space_name, 0, 1)
            try:
                p.mkdir()
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
        kept: list[retention.Protection] = []
        kept_in_trash = True
        with self.guard():
            e = self.entry(p)
            if e is None:
                raise NotFound("No existe.")
            index_rel = self.index_path(p)
            protections = retention.protected_under(self.db, self.space_id, index_rel)
            if not e.is_dir and protections:
                metrics.RETENTION_PROTECTIONS.inc()
                log.info("retention refused delete: space=%s path=%s", self.space_name,
                         index_rel)
                raise Forbidden(protections[0].message())
            if not e.is_dir:
                origin = versions.take_trail(self, index_rel)
                if origin is not None and trash.make_room(self, e.size):
                    versions.keep_renamed_away(self, p, e, origin)
                    cfdi_index.forget(self.db, self.space_id, [index_rel])
                    shares.deleted(self.db, self.space_id, index_rel)
                    self.record_event(audit.Action.DELETE, index_rel, size=e.size,
                                detail=f"versión de {origin}")
                    return DeleteResult(e.size, 1, [])
            if not protections:
                nbytes, nfiles = (e.size, 1) if not e.is_dir else self.tree_size(p)
                kept_in_trash = trash.make_room(self, nbytes)
                item = trash.put(self, p, index_rel, e.is_dir, nbytes, nfiles)
                shares.deleted(self.db, self.space_id, index_rel)
                if e.is_dir:
                    cfdi_index.forget_tree(self.db, self.space_id, index_rel, set())
                else:
                    cfdi_index.forget(self.db, self.space_id, [index_rel])
            else:
                item, nbytes, nfiles = self._trash_around(p, index_rel, protections)
                kept = protections
                shares.deleted(self.db, self.space_id, index_rel, _with_parents(
                    {pr.path for pr in protections}, index_rel))
                metrics.RETENTION_PROTECTIONS.inc(len(kept))
                cfdi_index.forget_tree(self.db, self.space_id, index_rel,
                                       {pr.path for pr in protections})
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
                      protections: list[retention.Protection]
                      ) -> tuple[TrashItem, int, int]:
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
        try:
            stack = [(str(p), dest_root)]
            while stack:
                src_dir, dst_dir = stack.pop()
                for name in sorted(os.listdir(src_dir)):
                    sp = os.path.join(src_dir, name)
                    if sp in keep_files:
                        continue
                    if sp in keep_dirs:
                        (dst_dir / name).mkdir()
                        made_dirs += 1
                        stack.append((sp, dst_dir / name))
                        continue
                    st = os.lstat(sp)
                    if stat.S_ISDIR(st.st_mode):
                        nbytes, count = quota.measure_tree(Path(sp))
                        count += 1
                    elif stat.S_ISREG(st.st_mode):
                        nbytes, count = st.st_size, 1
                    else:
                        nbytes, count = 0, 0
                    os.rename(sp, dst_dir / name)
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

    def erase(self, p: Path) -> tuple[int, int]:
        """Destroy ``p`` (a file or a whole tree under ``trash`` or ``versions``)
        for good and credit the space's safety net: the one path by which stored
        content leaves a space (trash expiry and emptying, version pruning,
        reclaim, a full reserve).
        Call it under :meth:`guard`. Returns (bytes, entries) freed; whatever
        was removed before an error is still credited."""
        real = os.path.realpath(p)
        if not any(real.startswith(os.path.realpath(a) + os.sep)
                   for a in (self.trash_root, self.versions_root)):
            raise Forbidden("Sólo se destruye lo que está en la papelera o en las versiones.")
        diskspace.rescue(self.settings)
        freed_bytes = freed_files = 0
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            return 0, 0
        try:
            if not stat.S_ISDIR(st.st_mode):
                os.unlink(p)
                if stat.S_ISREG(st.st_mode):
                    freed_bytes, freed_files = st.st_size, 1
            else:
                for dirpath, dirnames, filenames in os.walk(p, topdown=False):
                    links = {d for d in dirnames if os.path.islink(os.path.join(dirpath, d))}
                    for name in filenames + sorted(links):
                        fp = os.path.join(dirpath, name)
                        fst = os.lstat(fp)
                        os.unlink(fp)
                        if stat.S_ISREG(fst.st_mode):
                            freed_bytes += fst.st_size
                            freed_files += 1
                    for name in dirnames:
                        if name not in links:
                            os.rmdir(os.path.join(dirpath, name))
                            freed_files += 1
                os.rmdir(p)
                freed_files += 1
        finally:
            quota.apply(self.db, self.space_id, 0, 0, held_bytes=-freed_bytes,
                        held_files=-freed_files)
        log.info("erased: space=%s item=%s freed=%d bytes %d files", self.space_name,
                 p.relative_to(p.parent.parent), freed_bytes, freed_files)
        return freed_bytes, freed_files

    def ensure_parents(self, target: Path) -> None:
        """Create the missing folders above ``target`` (inside the space), each
        counted as one entry (refused only when the space is over its quota)."""
        self.check_depth(target)
        missing = []
        d = target.parent
        while d != self.root and self.entry(d) is None:
            missing.append(d)
            d = d.parent
        for d in reversed(missing):
            check_new_name(d.name)
            check_no_twin(d.parent, d.name)
            quota.reserve(self.db, self.space_id, self.space_name, 0, 1)
            try:
                d.mkdir()
            except OSError:
                quota.apply(self.db, self.space_id, 0, -1)
                raise

    def index_path(self, p: Path) -> str:
        """The path of ``p`` as the CFDI index knows it: '/a/b.xml' (NFC)."""
        return "/" + str(p.relative_to(self.root)) if p != self.root else "/"

    def move(self, src_rel: str, dst_rel: str, *, replace: bool = False) -> None:
        """Rename inside the space.

        Everything is decided before anything changes, under the space's lock:
        the source and the destination are not one item (Forbidden: the same
        name in another Unicode spelling is the same item), the destination is
        not inside the source, the new name obeys the name rules (no twin of a
        sibling, except the source's own: a name may change its case), no
        document leaves a legal hold that covers it
        (:func:`spaces.cfdi.retention.check_may_move`), and — with ``replace`` —
        what the destination holds may be replaced: never a protected CFDI,
        in the destination or anywhere below it (Forbidden, nothing touched).

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
                                   and os.path.samefile(src, dst)):
                raise Forbidden("El origen y el destino son el mismo elemento.")
            if de is None:  # a new name; it may change the case of the source's own
                check_no_twin(dst.parent, dst.name, besides=src)
            elif not replace:
                raise AlreadyExists("El destino ya existe.")
            else:
                self._check_replaceable(dst_index)
            retention.check_may_move(self.db, self.space_id, src_index, dst_index)
            detail = None
            if de is None:
                try:
                    os.rename(src, dst)
                except FileNotFoundError:  # gone meanwhile (a concurrent MOVE or DELETE)
                    raise NotFound("El origen ya no existe.") from None
            elif not de.is_dir and not se.is_dir:
                versions.replace_keeping(self, src, dst, de)
                shares.deleted(self.db, self.space_id, dst_index)  # replaced: over
                cfdi_index.forget(self.db, self.space_id, [dst_index])
                detail = "reemplaza al destino (queda como versión)"
            else:
                detail = "reemplaza al destino (" + (
                    "a la papelera)" if self._replace_by_rename(src, dst, de, dst_index)
                    else "eliminado: más grande que la reserva)")
            retention.moved(self.db, self.space_id, src_index, dst_index)
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
            os.rename(src, dst)
        except BaseException:
            trash.take_back(self, item, dst)
            raise
        if not kept_in_trash:
            trash.erase_item(self, item)
        shares.deleted(self.db, self.space_id, dst_index)
        if de.is_dir:
            cfdi_index.forget_tree(self.db, self.space_id, dst_index, set())
        else:
            cfdi_index.forget(self.db, self.space_id, [dst_index])
        versions.forget_trails(self, dst_index)
        self.record_event(audit.Action.DELETE, dst_index, size=nbytes,
                          detail="reemplazado por un MOVE: " + (
                              "a la papelera" if kept_in_trash else
                              "eliminado definitivamente, es más grande que toda la reserva"))
        return kept_in_trash

    def _check_replaceable(self, index_rel: str) -> None:
        """Forbidden (403, with the date) if the item at ``index_rel`` — a file,
        or a folder and everything below it — holds a protected CFDI or a
        document under a legal hold: a MOVE or COPY never replaces it."""
        protections = retention.protected_under(self.db, self.space_id, index_rel)
        if protections:
            metrics.RETENTION_PROTECTIONS.inc()
            log.info("retention refused replace: space=%s path=%s", self.space_name,
                     protections[0].path)
            raise Forbidden(protections[0].message())

    def check_copy_over(self, src_rel: str, dst_rel: str) -> None:
        """Before a COPY with ``Overwrite: T`` onto the existing ``dst_rel``
        touches anything: Forbidden if the destination (or anything below it)
        is a protected CFDI, or if it is the source itself or holds it (a copy
        over its own folder would delete the source before copying it)."""
        src, dst = self.resolve(src_rel), self.resolve(dst_rel)
        if src == dst or dst.is_relative_to(src) or src.is_relative_to(dst):
            raise Forbidden("No se puede copiar un elemento sobre sí mismo ni sobre la "
                            "carpeta que lo contiene.")
        self._check_replaceable(self.index_path(dst))

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
                fh = open(src, "rb")  # noqa: SIM115 - closed below
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


class Upload:
    """A file being written: streams into ``tmp``, counted byte by byte, and
    replaces its target only in :meth:`commit`. :meth:`abort` leaves no trace."""

    def __init__(self, files: SpaceFiles, target: Path, declared: int | None, *,
                 exact: bool = False) -> None:
        self.files = files
        self.target = target
        self.expected = declared if exact else None
        self.written = 0
        #: Bytes already handed to the disk's writeback (see PosixStore.start_writeback).
        self._synced = 0
        self.reserved = 0
        #: Entries reserved: 1 for a new file, so its commit usually has nothing left to count.
        self.reserved_files = 0
        self.head = b""
        #: What the content is (spaces.cfdi.parse), examined before the commit's lock.
        self._finding: cfdi.Finding | None = None
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
        self.tmp_name = f"up-{NODE}-{os.getpid()}-{os.urandom(8).hex()}"
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
            files.tmp.mkdir(parents=True, exist_ok=True)
            self.tmp_path = files.tmp / self.tmp_name
            fd = os.open(self.tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            self._release()
            if is_disk_full(exc):
                raise DiskFull(files.space_name) from exc
            raise
        self._fh: BinaryIO = os.fdopen(fd, "wb", buffering=0)

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
        if len(self.head) < cfdi_index.SNIFF_BYTES:
            self.head += data[: cfdi_index.SNIFF_BYTES - len(self.head)]
        self._write_all(data)
        self.written += n
        if self.written - self._synced >= WRITEBACK_STEP:
            PosixStore.start_writeback(self._fh.fileno(), self._synced, self.written - self._synced)
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
        view = memoryview(data)
        try:
            while view:
                done = self._fh.write(view)
                if not done:  # nothing taken, no error: treat as a full disk
                    raise OSError(errno.ENOSPC, "short write")
                view = view[done:]
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
                os.fsync(self._fh.fileno())
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
                os.utime(self.tmp_path, (mtime, mtime))
            # What the new content is, read before the space's lock: a stamped
            # CFDI of hundreds of megabytes takes a while to parse, and the
            # temporary file is this upload's alone (the lock only records it).
            self._finding = (cfdi_index.examine(self.tmp_path, self.target.name)
                             if f.index_cfdi and cfdi.worth_examining(self.target.name,
                                                                      self.head) else None)
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
                    check_no_twin(self.target.parent, self.target.name)
                if existing is not None:  # it may have become a protected CFDI meanwhile
                    retention.check_writable(f.db, f.space_id, f.index_path(self.target))
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
                    os.replace(self.tmp_path, self.target)
                except BaseException:
                    quota.apply(f.db, f.space_id, -accounted, -counted_files)
                    if kept is not None:
                        versions.unlink_kept(f, kept)
                    raise
                PosixStore.sync_folder(self.target.parent)  # the new name is durable too
                if keep:
                    quota.apply(f.db, f.space_id, 0, 0, held_bytes=old_now, held_files=1)
                self._index(new_file)
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

    def _index(self, new_file: bool) -> None:
        """Examine what was just stored (under the space lock, so a protection
        is recorded before anyone can delete the file)."""
        f = self.files
        rel = f.index_path(self.target)
        if f.index_cfdi and cfdi.worth_examining(self.target.name, self.head):
            cfdi_index.record(f.settings, f.db, f.space_id, rel, self.target, actor=f.actor,
                              finding=self._finding)
        elif not new_file:
            cfdi_index.forget(f.db, f.space_id, [rel])

    def abort(self) -> None:
        """Drop the temporary file and release the reservation; the target is untouched."""
        if self._done:
            return
        self._done = True
        try:
            self._fh.close()
        except OSError:
            pass
        try:
            os.unlink(self.tmp_path)
        except FileNotFoundError:
            pass
        self._release()
        # A LOCK's empty file whose first write failed does not stay behind.
        self.files.drop_placeholder(self.files.index_path(self.target))


@dataclass(frozen=True)
class Placeholder:
    """A LOCK's empty file, not yet written (see SpaceFiles.create_empty)."""

    space_id: int
    space_name: str
    path: str
    lock_root: str
    created_at: Any


_PLACEHOLDERS = (select(LockPlaceholder.space_id, Space.name, LockPlaceholder.path,
                        LockPlaceholder.lock_root, LockPlaceholder.created_at)
                 .join(Space, Space.id == LockPlaceholder.space_id)
                 .where(LockPlaceholder.created_at < bindparam("before")))


def lock_placeholders(db: Database, before: Any) -> list[Placeholder]:
    """Every space's lock placeholders created before ``before`` (UTC, naive)."""
    with db.engine.connect() as c:
        return [Placeholder(*r) for r in c.execute(_PLACEHOLDERS, {"before": before}).all()]


def _with_parents(paths: set[str], top: str) -> frozenset[str]:
    """``paths`` and every folder above them up to ``top`` (included)."""
    out = set(paths)
    for path in paths:
        d = path.rsplit("/", 1)[0]
        while len(d) >= len(top) and d:
            out.add(d)
            d = d.rsplit("/", 1)[0]
    return frozenset(out)
