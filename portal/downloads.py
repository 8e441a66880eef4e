"""Files from ``data_dir`` sent to the browser as attachments: opened by the
store (:mod:`spaces.files.store`), never by path here, and answered through
:func:`flask.send_file` with Range requests, the store's opaque ETag (the one
the WebDAV drive gives) and 304 revalidation. The web drive's downloads, its
earlier versions and share links, and the operator's constancias use it.
"""

from __future__ import annotations

import unicodedata
from typing import BinaryIO
from urllib.parse import quote

from flask import Response, request, send_file
from werkzeug.exceptions import RequestedRangeNotSatisfiable
from werkzeug.wsgi import wrap_file

from spaces.files.store import Store

#: Bytes read from a file at a time (send_file's own 8 KiB made a big file's
#: download three times slower).
BLOCK = 256 * 1024


def content_disposition(name: str, *, inline: bool = False) -> str:
    """``attachment; filename="ascii"; filename*=UTF-8''...`` (RFC 6266/5987): every
    browser gets the real UTF-8 name, old ones an ASCII stand-in."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    ascii_name = "".join(c if c.isprintable() and c not in '"\\' else "_"
                         for c in ascii_name) or "archivo"
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


def send_stored(store: Store, fh: BinaryIO, name: str, *, mimetype: str) -> Response:
    """``fh``, opened by ``store``, as the attachment ``name`` through
    :func:`flask.send_file`: Range requests (206, 416), the store's opaque ETag
    (the drive's own) and Last-Modified, and 304 on If-None-Match or
    If-Modified-Since. Never cached: the files are private."""
    try:
        info = store.info_open(fh)
        resp = send_file(fh, mimetype=mimetype, conditional=False, etag=info.etag,
                         last_modified=info.mtime)
        resp.response = wrap_file(request.environ, fh, buffer_size=BLOCK)
    except BaseException:
        fh.close()
        raise
    # send_file knows the length of a path or a BytesIO only, and Range needs it:
    # the conditional part is done here with the length the store gave.
    resp.content_length = info.size
    try:
        resp.make_conditional(request.environ, accept_ranges=True, complete_length=info.size)
    except RequestedRangeNotSatisfiable:
        resp.close()
        raise
    resp.headers["Content-Disposition"] = content_disposition(name)
    resp.headers["Cache-Control"] = "private, no-store"
    return resp


def whole_body(resp: Response) -> bool:
    """Whether a download answer starts the file (200, or a range from byte 0):
    what counts as one download, not its later pieces or a 304."""
    if resp.status_code == 206:
        return resp.content_range.start == 0
    return resp.status_code == 200
