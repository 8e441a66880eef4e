"""Downloads from the web drive: a file, streamed with its real UTF-8 name, or
a folder as a ZIP produced while it is sent. Share links serve theirs through
the same functions.
"""

from __future__ import annotations

import io
import logging
import mimetypes
import os
import stat
import time
import unicodedata
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from flask import Response, flash, request
from flask_babel import gettext as _

from portal.drive.common import BLOCK, bp, clean_rel, parent_of, require, status_of
from portal.drive.listing import render_folder
from spaces.core.errors import NotFound, SpaceError
from spaces.files.storage import SpaceFiles

log = logging.getLogger(__name__)

#: Files whose ZIP entry may pass 4 GiB need ZIP64 headers up front (the stream
#: cannot seek back to fix them).
ZIP64_FROM = 2**31


def content_disposition(name: str, *, inline: bool = False) -> str:
    """``attachment; filename="ascii"; filename*=UTF-8''...`` (RFC 6266/5987): every
    browser gets the real UTF-8 name, old ones an ASCII stand-in."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    ascii_name = "".join(c if c.isprintable() and c not in '"\\' else "_"
                         for c in ascii_name) or "archivo"
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"

def _open_nofollow(p: Path) -> io.BufferedReader:
    fd = os.open(p, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    return os.fdopen(fd, "rb", buffering=0)  # type: ignore[return-value]

def stream_file(fh: Any) -> Iterator[bytes]:
    with fh:
        while True:
            buf = fh.read(BLOCK)
            if not buf:
                return
            yield buf

def file_response(files: SpaceFiles, rel: str) -> Response:
    """Stream the file at ``rel`` (404 for none, a folder goes elsewhere)."""
    p = files.resolve(rel)
    e = files.entry(p)
    if e is None or e.is_dir:
        raise NotFound(_("El archivo no existe."))
    try:
        fh = _open_nofollow(p)
    except FileNotFoundError:
        raise NotFound(_("El archivo no existe.")) from None
    size = os.fstat(fh.fileno()).st_size
    mime = mimetypes.guess_type(p.name)[0] or "application/octet-stream"
    resp = Response(stream_file(fh), mimetype=mime, direct_passthrough=True)
    resp.headers["Content-Length"] = str(size)
    resp.headers["Content-Disposition"] = content_disposition(p.name)
    resp.headers["Last-Modified"] = _http_date(e.mtime)
    resp.headers["Cache-Control"] = "private, no-store"
    return resp

def _http_date(ts: float) -> str:
    from email.utils import formatdate

    return formatdate(ts, usegmt=True)

class _ZipSink(io.RawIOBase):
    """What ``zipfile`` writes into: collects the bytes until the generator hands
    them to the server. Not seekable, so zipfile writes data descriptors and the
    memory held is one block, whatever the size of the folder."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._pos = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        self._chunks.append(data)
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        pass

    def drain(self) -> Iterator[bytes]:
        if self._chunks:
            chunks, self._chunks = self._chunks, []
            yield b"".join(chunks)

def _zip_time(mtime: float) -> tuple[int, int, int, int, int, int]:
    t = time.localtime(max(mtime, 315532800 + 86400))  # ZIP cannot say before 1980
    return (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec)

def walk_tree(files: SpaceFiles, folder: Path, prefix: str
              ) -> Iterator[tuple[Path, str, os.stat_result]]:
    """(path, name in the archive, lstat) of everything below ``folder``, folders
    before their contents; symlinks and special files are never listed."""
    try:
        members = sorted(files.list_dir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return
    for name, st in members:
        p = folder / name
        arc = f"{prefix}{name}"
        if stat.S_ISDIR(st.st_mode):
            yield p, arc + "/", st
            yield from walk_tree(files, p, arc + "/")
        else:
            yield p, arc, st

def zip_stream(files: SpaceFiles, folder: Path, top: str) -> Iterator[bytes]:
    """A ZIP of ``folder`` (its contents under ``top/``), produced while it is sent."""
    sink = _ZipSink()
    nfiles = nbytes = 0
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        zf.writestr(zipfile.ZipInfo(top + "/", _zip_time(time.time())), b"")
        yield from sink.drain()
        for p, arc, st in walk_tree(files, folder, top + "/"):
            info = zipfile.ZipInfo(arc, _zip_time(st.st_mtime))
            if arc.endswith("/"):
                zf.writestr(info, b"")
                continue
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            try:
                src = _open_nofollow(p)
            except (FileNotFoundError, OSError):
                continue  # gone meanwhile, or replaced by a symlink: skipped
            with src, zf.open(info, "w", force_zip64=st.st_size >= ZIP64_FROM) as dst:
                while True:
                    buf = src.read(BLOCK)
                    if not buf:
                        break
                    dst.write(buf)
                    nbytes += len(buf)
                    yield from sink.drain()
            nfiles += 1
            yield from sink.drain()
    yield from sink.drain()
    log.info("zip sent: space=%s folder=%s files=%d bytes=%d", files.space_name,
             files.index_path(folder), nfiles, nbytes)

def zip_response(files: SpaceFiles, rel: str) -> Response:
    p = files.resolve(rel)
    e = files.entry(p)
    if e is None or not e.is_dir:
        raise NotFound(_("La carpeta no existe."))
    top = p.name if p != files.root else files.space_name
    resp = Response(zip_stream(files, p, top), mimetype="application/zip",
                    direct_passthrough=True)
    resp.headers["Content-Disposition"] = content_disposition(top + ".zip")
    resp.headers["Cache-Control"] = "private, no-store"
    return resp

@bp.get("/<name>/descargar")
def download(name: str) -> Any:
    """A file (streamed), or a folder as a ZIP."""
    w = require(name)
    rel = clean_rel(request.args.get("ruta"))
    try:
        p = w.files.resolve(rel)
        e = w.files.entry(p)
        if e is not None and e.is_dir:
            return zip_response(w.files, rel)
        return file_response(w.files, rel)
    except SpaceError as exc:
        flash(str(exc), "error")
        return render_folder(w, parent_of(rel), status_of(exc))

