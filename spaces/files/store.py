"""The store: the one module that touches the files under ``data_dir``.

Everything else (the file core, trash and versions, the CFDI index, quota
recounts, backup, the drive and the web drive) asks the store: to read a file
as a stream, to list a folder, to learn an entry's size, dates and opaque
ETag, to write a temporary file and put it in place durably, to rename, link,
copy or remove. Policy lives above it: the store knows nothing of quota, trash,
retention or the database (SFTPGo's ``vfs.Fs`` is the model).

:class:`PosixStore` (a local or network POSIX filesystem) is the only
implementation today; an object-storage backend implements :class:`Store`
and answers the capability questions (:attr:`Store.atomic_rename`,
:attr:`Store.hard_links`) differently. See docs/object-storage.md.

Paths are absolute and must lie under the store's root; entries are never
followed through symbolic links.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from spaces.core.settings import Settings

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def is_disk_full(exc: OSError) -> bool:
    """Whether an error means the disk (or the user's disk quota) is full."""
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


def _etag(inode: int, mtime_ns: int, size: int) -> str:
    return f"{inode:x}-{mtime_ns:x}-{size:x}"


@dataclass(frozen=True)
class Info:
    """What is at a path (never a symbolic link: see :meth:`Store.info`)."""

    is_dir: bool
    size: int
    mtime: float
    ctime: float
    inode: int
    mtime_ns: int

    @property
    def etag(self) -> str:
        """Opaque: changes whenever the content may have (identity, time, size).
        The drive's one formula (GET, PROPFIND, If-Match)."""
        return _etag(self.inode, self.mtime_ns, self.size)

    @staticmethod
    def etag_of(st: os.stat_result) -> str:
        """:attr:`etag` of what ``st`` describes, without building an Info (a
        folder listing asks for thousands)."""
        return _etag(st.st_ino, st.st_mtime_ns, st.st_size)

    @classmethod
    def of(cls, st: os.stat_result) -> Info:
        return cls(stat.S_ISDIR(st.st_mode), st.st_size, st.st_mtime, st.st_ctime,
                   st.st_ino, st.st_mtime_ns)


class Store(Protocol):
    """Every file operation under ``data_dir``: what a backend must implement
    (docs/object-storage.md). Capabilities say what it can do natively;
    callers choose their strategy from them."""

    root: Path
    #: A finished upload replaces its target in one step (rename over it).
    atomic_rename: bool
    #: An earlier version can share the bytes of the current file (hard link).
    hard_links: bool

    # describing and reading
    def info(self, p: Path) -> Info | None: ...
    def info_open(self, fh: BinaryIO) -> Info: ...
    def lstat(self, p: Path | str) -> os.stat_result: ...
    def is_link(self, p: Path | str) -> bool: ...
    def same_file(self, a: Path, b: Path) -> bool: ...
    def realpath(self, p: Path) -> str: ...
    def scandir(self, p: Path) -> Iterator[os.DirEntry[str]]: ...
    def listdir(self, p: Path | str) -> list[str]: ...
    def walk(self, p: Path | str, *, topdown: bool = True
             ) -> Iterator[tuple[str, list[str], list[str]]]: ...
    def measure(self, root: Path) -> tuple[int, int]: ...
    def disk_space(self, p: Path) -> tuple[int, int]: ...
    def open_read(self, p: Path) -> BinaryIO: ...

    # writing
    def create_exclusive(self, p: Path) -> BinaryIO: ...
    def create_empty(self, p: Path) -> Info: ...
    def write_all(self, fh: Any, data: bytes) -> None: ...
    def allocate(self, p: Path, nbytes: int) -> bool: ...
    def start_writeback(self, fd: int, offset: int, nbytes: int) -> None: ...
    def sync(self, fh: Any) -> None: ...
    def sync_folder(self, folder: Path) -> None: ...
    def replace(self, src: Path, dst: Path, *, durable: bool = True) -> None: ...
    def rename(self, src: Path, dst: Path) -> None: ...
    def link(self, src: Path, dst: Path) -> None: ...
    def copy(self, src: Path, dst: Path) -> None: ...
    def copystat(self, src: Path, dst: Path) -> None: ...
    def unlink(self, p: Path, *, missing_ok: bool = False) -> None: ...
    def rmtree(self, p: Path) -> None: ...
    def mkdir(self, p: Path, *, parents: bool = False, exist_ok: bool = False) -> None: ...
    def rmdir(self, p: Path) -> None: ...
    def set_mtime(self, p: Path, mtime: float) -> None: ...
    def flock(self, p: Path, timeout: float) -> AbstractContextManager[None]: ...


class PosixStore:
    """The store on a POSIX filesystem (local disk, or NFS shared by drive nodes)."""

    atomic_rename = True
    hard_links = True

    def __init__(self, root: Path) -> None:
        self.root = root

    # -- reading ---------------------------------------------------------------------

    def info(self, p: Path) -> Info | None:
        """The entry at ``p`` or None if nothing (or a symbolic link) is there."""
        try:
            st = os.lstat(p)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if stat.S_ISLNK(st.st_mode):
            return None
        return Info.of(st)

    def scandir(self, p: Path) -> Iterator[os.DirEntry[str]]:
        """The entries of folder ``p`` (``os.scandir``: cheap stat of each)."""
        with os.scandir(p) as it:
            yield from it

    @staticmethod
    def measure(root: Path) -> tuple[int, int]:
        """(bytes of regular files, number of files and folders) below ``root``,
        not counting ``root`` itself and never following symbolic links; a
        missing ``root`` (or a part that vanishes meanwhile) counts nothing."""
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

    @staticmethod
    def disk_space(p: Path) -> tuple[int, int]:
        """(free bytes for an unprivileged process, total bytes) of the
        filesystem that holds ``p`` (followed if a symbolic link: a mount of
        its own); FileNotFoundError if nothing is there."""
        st = os.statvfs(p)
        return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize

    @staticmethod
    def info_open(fh: BinaryIO) -> Info:
        """What a file opened by :meth:`open_read` is: its own size, dates and ETag,
        whatever its name points to by now."""
        return Info.of(os.fstat(fh.fileno()))

    def open_read(self, p: Path) -> BinaryIO:
        """``p`` opened for reading, refusing a symbolic link at its last step."""
        fd = os.open(p, os.O_RDONLY | _NOFOLLOW)
        return os.fdopen(fd, "rb")

    @staticmethod
    def lstat(p: Path | str) -> os.stat_result:
        """The entry at ``p`` itself, a symbolic link or a special file included
        (OSError when there is none): for callers that must tell those apart."""
        return os.lstat(p)

    @staticmethod
    def is_link(p: Path | str) -> bool:
        """Whether ``p`` is a symbolic link (False when nothing is there)."""
        return os.path.islink(p)

    @staticmethod
    def listdir(p: Path | str) -> list[str]:
        """The names in folder ``p``."""
        return os.listdir(p)

    @staticmethod
    def walk(p: Path | str, *, topdown: bool = True
             ) -> Iterator[tuple[str, list[str], list[str]]]:
        """``os.walk`` of the tree at ``p``, never following symbolic links."""
        yield from os.walk(p, topdown=topdown)

    @staticmethod
    def same_file(a: Path, b: Path) -> bool:
        """Whether ``a`` and ``b`` are one file (another spelling, a hard link)."""
        return os.path.samefile(a, b)

    @staticmethod
    def realpath(p: Path) -> str:
        """``p`` with every symbolic link on the way resolved."""
        return os.path.realpath(p)

    # -- writing ---------------------------------------------------------------------

    def create_exclusive(self, p: Path) -> BinaryIO:
        """A new file at ``p`` (never an existing one), private to the service."""
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
        return os.fdopen(fd, "wb", buffering=0)

    def create_empty(self, p: Path) -> Info:
        """A new empty file at ``p`` (never an existing one), private to the
        service; what is there now."""
        with self.create_exclusive(p) as fh:
            return Info.of(os.fstat(fh.fileno()))

    @staticmethod
    def write_all(fh: Any, data: bytes) -> None:
        """Write every byte: a filling disk may write part of a block and say so
        only in the count, never with an error (loop until done or an error)."""
        view = memoryview(data)
        while view:
            n = fh.write(view)
            if n is None or n <= 0:
                raise OSError(errno.ENOSPC, "short write")
            view = view[n:]

    def allocate(self, p: Path, nbytes: int) -> bool:
        """A new file at ``p`` (never an existing one), private to the service,
        whose ``nbytes`` are really taken on disk (not a sparse file). False,
        and nothing left at ``p``, when the disk cannot give them; OSError
        when the file cannot be made."""
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
        try:
            os.posix_fallocate(fd, 0, nbytes)
        except OSError:
            os.close(fd)
            self.unlink(p, missing_ok=True)
            return False
        os.close(fd)
        return True

    @staticmethod
    def start_writeback(fd: int, offset: int, nbytes: int) -> None:
        """Start writing ``nbytes`` at ``offset`` to disk without waiting for it: a
        big upload's data then goes to disk while the rest arrives, and the final
        fsync (which still decides durability) has little left to do. A hint
        only: errors are ignored, fsync reports real ones."""
        if _sync_file_range is not None:
            _sync_file_range(fd, offset, nbytes, _SYNC_FILE_RANGE_WRITE)

    @staticmethod
    def sync(fh: Any) -> None:
        """The file's bytes are on disk when this returns."""
        os.fsync(fh.fileno())

    @staticmethod
    def sync_folder(folder: Path) -> None:
        """Make a rename into ``folder`` durable (the file's own fsync does not
        cover its name). A filesystem that cannot fsync a folder is let be."""
        try:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.EROFS, errno.EBADF):
                raise
        finally:
            os.close(fd)

    def replace(self, src: Path, dst: Path, *, durable: bool = True) -> None:
        """Put ``src`` in place of ``dst`` in one step; with ``durable`` the new
        name survives a power cut."""
        os.replace(src, dst)
        if durable:
            self.sync_folder(dst.parent)

    @staticmethod
    def rename(src: Path, dst: Path) -> None:
        os.rename(src, dst)

    @staticmethod
    def link(src: Path, dst: Path) -> None:
        os.link(src, dst)

    def copy(self, src: Path, dst: Path) -> None:
        """A durable copy of ``src`` at new name ``dst``, with its times."""
        with self.open_read(src) as fi, self.create_exclusive(dst) as fo:
            shutil.copyfileobj(fi, fo, 1024 * 1024)
            self.sync(fo)
        shutil.copystat(src, dst)

    @staticmethod
    def copystat(src: Path, dst: Path) -> None:
        """Give ``dst`` the permission bits and times of ``src`` (a folder's
        copy in a snapshot)."""
        shutil.copystat(src, dst)

    @staticmethod
    def unlink(p: Path, *, missing_ok: bool = False) -> None:
        p.unlink(missing_ok=missing_ok)

    @staticmethod
    def rmtree(p: Path) -> None:
        shutil.rmtree(p, ignore_errors=True)

    @staticmethod
    def mkdir(p: Path, *, parents: bool = False, exist_ok: bool = False) -> None:
        p.mkdir(parents=parents, exist_ok=exist_ok)

    @staticmethod
    def rmdir(p: Path) -> None:
        os.rmdir(p)

    @staticmethod
    def set_mtime(p: Path, mtime: float) -> None:
        os.utime(p, (mtime, mtime), follow_symlinks=False)

    @staticmethod
    @contextmanager
    def flock(p: Path, timeout: float) -> Iterator[None]:
        """Hold an exclusive ``flock`` on the file ``p`` (made, private, if
        missing), waiting at most ``timeout`` seconds for it (TimeoutError)."""
        import fcntl

        fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{p}: still locked after {timeout} s") from None
                    time.sleep(0.01)
            yield
        finally:
            os.close(fd)  # releases the flock


_stores: dict[Path, Store] = {}


def store_for(settings: Settings) -> Store:
    """The store of an installation's ``data_dir`` (one per folder and process):
    callers see the :class:`Store` interface only, so a backend is a change here."""
    root = settings.data_path
    got = _stores.get(root)
    if got is None:
        got = _stores.setdefault(root, PosixStore(root))
    return got


def _writeback_function() -> Any:
    """Linux's ``sync_file_range`` through ctypes, or None where there is none."""
    try:
        import ctypes

        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    return fn


_sync_file_range = _writeback_function()
_SYNC_FILE_RANGE_WRITE = 2
