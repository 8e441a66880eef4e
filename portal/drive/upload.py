"""Uploads to the web drive, one file per request.

Uploads cannot use a form (the portal caps form bodies at ``[server]
buffered_body`` and would buffer them): the browser POSTs each file's bytes as
the raw request body, which is streamed in blocks into
``SpaceFiles.open_upload(rel, length, exact=True)``.
That view is exempt from the form CSRF hook (it would parse the body) and checks
the ``X-CSRFToken`` header itself.
"""

from __future__ import annotations

import json
import logging
import unicodedata
from typing import Any

from flask import Response, request
from flask_babel import gettext as _
from flask_wtf.csrf import ValidationError, validate_csrf

from portal.drive.common import (
    BLOCK,
    bp,
    check_not_status_file,
    clean_rel,
    join,
    status_of,
    title_of,
    who,
)
from spaces.access import service
from spaces.core.errors import NotFound, SpaceError
from spaces.files.names import check_new_name

log = logging.getLogger(__name__)


@bp.post("/<name>/subir")
def upload(name: str) -> Any:
    """One file per request, its bytes as the raw body (``?carpeta=/a&nombre=x.pdf``),
    streamed to disk. JSON answer; the drive's statuses (201, 200 replaced, 507,
    403, 400...). Exempt from the form CSRF hook: checks ``X-CSRFToken`` itself."""
    try:
        validate_csrf(request.headers.get("X-CSRFToken"))
    except ValidationError:
        return _json_error(400, _("La página caducó"),
                           _("Recargue la página e intente de nuevo."))
    w = who(name)
    if w is None:
        return _json_error(401, _("Su sesión terminó"), _("Entre de nuevo a la unidad."))
    folder = clean_rel(request.args.get("carpeta"))
    length = request.content_length
    upload_ = None
    remaining = length or 0
    try:
        service.check_may_write(w.role, w.username, w.space.status)
        # The browser's own file name, as is: the same rules as a PUT.
        n = unicodedata.normalize("NFC", request.args.get("nombre") or "")
        check_new_name(n)
        fe = w.files.entry(w.files.resolve(folder))
        if fe is None or not fe.is_dir:
            raise NotFound(_("La carpeta de destino no existe."))
        if length is None or "chunked" in request.headers.get("Transfer-Encoding", "").lower():
            return _json_error(411, _("No se pudo completar"),
                               _("La subida debe indicar su tamaño (Content-Length)."))
        rel = join(folder, n)
        check_not_status_file(rel)
        upload_ = w.files.open_upload(rel, length, exact=True)
        stream = request.environ["wsgi.input"]
        remaining = length
        while remaining > 0:
            buf = stream.read(min(BLOCK, remaining))
            if not buf:
                break
            upload_.write(buf)
            remaining -= len(buf)
        created = upload_.commit()
        upload_ = None
    except SpaceError as exc:
        if upload_ is not None:
            upload_.abort()
        log.info("web drive upload refused: space=%s user=%s folder=%s bytes=%s: %s",
                 w.space.name, w.username, folder, length, exc)
        if 0 < remaining <= DISCARD_LIMIT:
            _discard(remaining)
        return _json_error(status_of(exc), title_of(exc), str(exc), unread=remaining)
    except BaseException:
        if upload_ is not None:
            upload_.abort()
        raise
    log.info("web drive upload: space=%s user=%s path=%s bytes=%d", w.space.name,
             w.username, rel, length)
    return _json(201 if created else 200, ok=True, path=rel, size=length)


def _json(status: int, **fields: Any) -> Response:
    """JSON with the Spanish as written (not escaped): the page shows it as is."""
    return Response(json.dumps(fields, ensure_ascii=False), status=status,
                    mimetype="application/json")


#: A refused upload's unread body up to this size is read and dropped, so the
#: browser gets the refusal (a browser that is cut off while it still sends sees
#: a network error, not the answer); above it the connection is closed.
DISCARD_LIMIT = 64 * 2**20


def _discard(nbytes: int) -> None:
    stream = request.environ["wsgi.input"]
    while nbytes > 0:
        buf = stream.read(min(BLOCK, nbytes))
        if not buf:
            return
        nbytes -= len(buf)


def _json_error(status: int, title: str, message: str, *, unread: int | None = None) -> Any:
    resp = _json(status, ok=False, error=title, message=message)
    left = (request.content_length or 0) if unread is None else unread
    if left > DISCARD_LIMIT or (unread is None and left > 2**20):
        resp.headers["Connection"] = "close"  # the unread body is not drained
    return resp

