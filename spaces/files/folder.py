"""One space's folder as the file core sees it: where its areas are, what is at
a path (:meth:`SpaceFolder.resolve`, :meth:`SpaceFolder.entry`), the plan's
limits on paths (depth, address length), the free room on disk, the space's
guard, the audit log of its changes, the policies of its changes run in
their order (:mod:`spaces.files.policy`), and :meth:`SpaceFolder.erase`, the
one function that destroys stored content for good (trash expiry, emptying,
version pruning, a full reserve).

:class:`spaces.files.storage.SpaceFiles` builds the changes on it; trash and
versions work through it. Every file operation goes through the store
(:mod:`spaces.files.store`).
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from spaces.core import audit
from spaces.core.audit import Actor
from spaces.core.db import Database
from spaces.core.errors import Forbidden, InvalidName, UsageUnavailable
from spaces.core.models import DAV_MOUNT, MAX_KEY_CHARS, Space
from spaces.core.settings import Settings
from spaces.files import diskspace, quota
from spaces.files.entries import DiskFull, Entry
from spaces.files.guard import space_guard
from spaces.files.layout import space_dir
from spaces.files.names import check_new_name, check_no_twin, split_rel
from spaces.files.policy import Kept, Policy
from spaces.files.store import store_for

log = logging.getLogger(__name__)


class SpaceFolder:
    """One space's folder: paths, entries, limits, guard, audit, erase. Cheap
    to build: one per request."""

    def __init__(self, settings: Settings, db: Database, space_id: int, space_name: str,
                 *, policies: Sequence[Policy], actor: Actor | None = None,
                 max_depth: int = 0) -> None:
        """``policies``: run in this order at each point of a change (see
        :mod:`spaces.files.policy`; :func:`spaces.access.files.space_files`
        hands in the installation's). ``max_depth``: the plan's, when the
        caller has read it already (the drive's credential query does); 0:
        read on first need."""
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
        #: Every file operation of this space goes through it.
        self.store = store_for(settings)
        self.policies = tuple(policies)
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

    # -- policies, in their order ---------------------------------------------------
    def prepare(self, src: Path, name: str, head: bytes | None = None) -> list[Any]:
        """Outside the guard: what each policy makes of ``src`` (a file or a
        tree) about to be stored as ``name``; hand it to :meth:`after_store`."""
        return [p.prepare(self, src, name, head) for p in self.policies]

    def before_write(self, rel: str) -> None:
        for p in self.policies:
            p.before_write(self, rel)

    def before_delete(self, rel: str, *, is_dir: bool) -> list[Kept]:
        """Refused by a policy, or what must stay below the folder at ``rel``."""
        kept: list[Kept] = []
        for p in self.policies:
            kept.extend(p.before_delete(self, rel, is_dir=is_dir))
        return kept

    def before_replace(self, rel: str) -> None:
        for p in self.policies:
            p.before_replace(self, rel)

    def before_move(self, src: str, dst: str) -> None:
        for p in self.policies:
            p.before_move(self, src, dst)

    def after_store(self, fs_path: Path, *, new: bool, head: bytes | None = None,
                    prepared: list[Any] | None = None, root: Path | None = None) -> None:
        """New content is at ``fs_path``; ``prepared``: what :meth:`prepare`
        returned for ``root`` (``fs_path`` itself or a folder above it)."""
        rel = self.index_path(fs_path)
        for i, p in enumerate(self.policies):
            p.after_store(self, rel, fs_path, new=new, head=head,
                          prepared=prepared[i] if prepared else None,
                          root=fs_path if root is None else root)

    def after_move(self, src: str, dst: str) -> None:
        for p in self.policies:
            p.after_move(self, src, dst)

    def after_delete(self, rel: str, *, is_dir: bool,
                     kept: frozenset[str] = frozenset()) -> None:
        for p in self.policies:
            p.after_delete(self, rel, is_dir=is_dir, kept=kept)

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
                st = self.store.lstat(at)
            except OSError:  # absent (or unreachable): nothing below it exists either
                break
            if stat.S_ISLNK(st.st_mode):
                log.warning("symlink refused: space=%s path=%r", self.space_name, rel)
                raise Forbidden("La ruta está fuera de su espacio.")
        return self.root.joinpath(*parts)

    def entry(self, p: Path) -> Entry | None:
        """lstat ``p``; None if absent. Symlinks and special files are refused."""
        try:
            st = self.store.lstat(p)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                raise InvalidName("El nombre o la ruta es demasiado largo.") from None
            raise
        if stat.S_ISLNK(st.st_mode) or not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
            raise Forbidden("Este elemento no es un archivo ni una carpeta del espacio.")
        return Entry(stat.S_ISDIR(st.st_mode), st.st_size, st.st_mtime, st.st_ctime,
                     st.st_ino, st.st_mtime_ns, p)

    def list_dir(self, p: Path) -> list[tuple[str, os.stat_result]]:
        """Members of folder ``p`` with their lstat, in one directory scan; symlinks
        and special files are skipped."""
        out = []
        for e in self.store.scandir(p):
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
        nbytes, count = self.store.measure(p)
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

    def extent(self, p: Path) -> tuple[int, int]:
        """(levels, encoded characters) that lie below folder ``p``: how much
        deeper and longer its deepest and longest path is than ``p`` itself,
        never following symlinks."""
        levels = chars = 0
        for dirpath, dirnames, filenames in self.store.walk(p):
            rel = Path(dirpath).relative_to(p)
            for name in dirnames + filenames:
                sub = unicodedata.normalize("NFD", "/" + str(rel / name) if str(rel) != "."
                                            else "/" + name)
                levels = max(levels, sub.count("/"))
                chars = max(chars, len(quote(sub)))
        return levels, chars

    # -- writes -------------------------------------------------------------------
    def erase(self, p: Path) -> tuple[int, int]:
        """Destroy ``p`` (a file or a whole tree under ``trash`` or ``versions``)
        for good and credit the space's safety net: the one path by which stored
        content leaves a space (trash expiry and emptying, version pruning,
        reclaim, a full reserve).
        Call it under :meth:`guard`. Returns (bytes, entries) freed; whatever
        was removed before an error is still credited."""
        store = self.store
        real = store.realpath(p)
        if not any(real.startswith(store.realpath(a) + os.sep)
                   for a in (self.trash_root, self.versions_root)):
            raise Forbidden("Sólo se destruye lo que está en la papelera o en las versiones.")
        diskspace.rescue(self.settings)
        freed_bytes = freed_files = 0
        try:
            st = store.lstat(p)
        except FileNotFoundError:
            return 0, 0
        try:
            if not stat.S_ISDIR(st.st_mode):
                store.unlink(p)
                if stat.S_ISREG(st.st_mode):
                    freed_bytes, freed_files = st.st_size, 1
            else:
                for dirpath, dirnames, filenames in store.walk(p, topdown=False):
                    links = {d for d in dirnames if store.is_link(os.path.join(dirpath, d))}
                    for name in filenames + sorted(links):
                        fp = Path(dirpath, name)
                        fst = store.lstat(fp)
                        store.unlink(fp)
                        if stat.S_ISREG(fst.st_mode):
                            freed_bytes += fst.st_size
                            freed_files += 1
                    for name in dirnames:
                        if name not in links:
                            store.rmdir(Path(dirpath, name))
                            freed_files += 1
                store.rmdir(p)
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
            check_no_twin(self.store, d.parent, d.name)
            quota.reserve(self.db, self.space_id, self.space_name, 0, 1)
            try:
                self.store.mkdir(d)
            except OSError:
                quota.apply(self.db, self.space_id, 0, -1)
                raise

    def index_path(self, p: Path) -> str:
        """The path of ``p`` as the CFDI index knows it: '/a/b.xml' (NFC)."""
        return "/" + str(p.relative_to(self.root)) if p != self.root else "/"

