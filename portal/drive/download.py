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
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flask import Response, flash, request
from flask_babel import gettext as _

from portal.downloads import content_disposition, send_stored
from portal.drive.common import BLOCK, bp, clean_rel, parent_of, require, status_of
from portal.drive.listing import render_folder
from spaces.core.errors import NotFound, SpaceError
from spaces.files.storage import SpaceFiles
from spaces.files.store import store_for

log = logging.getLogger(__name__)

#: Files whose ZIP entry may pass 4 GiB need ZIP64 headers up front (the stream
#: cannot seek back to fix them).
ZIP64_FROM = 2**31


def file_response(files: SpaceFiles, rel: str) -> Response:
    """The file at ``rel`` (404 for none, a folder goes elsewhere), opened by the
    store and sent by :func:`send_stored`."""
    p = files.resolve(rel)
    e = files.entry(p)
    if e is None or e.is_dir:
        raise NotFound(_("El archivo no existe."))
    store = store_for(files.settings)
    try:
        fh = store.open_read(p)
    except FileNotFoundError:
        raise NotFound(_("El archivo no existe.")) from None
    mime = mimetypes.guess_type(p.name)[0] or "application/octet-stream"
    return send_stored(store, fh, p.name, mimetype=mime)


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
    store = store_for(files.settings)
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
                src = store.open_read(p)
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

