"""The web drive's form actions that change files: new folder, rename, move
and delete, each through :class:`spaces.files.storage.SpaceFiles` under the
drive's write rule; a refusal shows the folder again with its reason and status.
"""

from __future__ import annotations

import logging
import os
import unicodedata
from typing import Any

from flask import flash, redirect, request, url_for
from flask_babel import gettext as _

from portal.drive.common import (
    Who,
    bp,
    check_not_status_file,
    clean_rel,
    form_item,
    join,
    parent_of,
    require,
    status_of,
    title_of,
)
from portal.drive.listing import render_folder
from spaces.access import service
from spaces.core.errors import InvalidName, NotFound, SpaceError
from spaces.files.names import check_new_name

log = logging.getLogger(__name__)


def _write_action(name: str, act: Any) -> Any:
    """Run a form action that changes files; on refusal, the folder with the
    Spanish reason and the drive's status (403, 507, 400, 404, 409)."""
    w = require(name)
    folder = clean_rel(request.form.get("carpeta"))
    try:
        service.check_may_write(w.role, w.username, w.space.status)
        message = act(w, folder)
    except SpaceError as exc:
        log.info("web drive refused: space=%s user=%s action=%s: %s", w.space.name,
                 w.username, request.endpoint, exc)
        flash(f"{title_of(exc)}: {exc}", "error")
        return render_folder(w, folder, status_of(exc))
    if message:
        flash(message, "ok")
    while folder != "/":  # the folder itself may be what was moved or deleted
        try:
            e = w.files.entry(w.files.resolve(folder))
        except SpaceError:
            e = None
        if e is not None and e.is_dir:
            break
        folder = parent_of(folder)
    return redirect(url_for("drive.browse", name=w.space.name, ruta=folder))


def _name_field(key: str = "nombre") -> str:
    # Spaces typed around a name in a form are dropped; any other character
    # stays and meets the name rules (a trailing no-break space is refused,
    # as on the drive, never silently turned into another name).
    n = unicodedata.normalize("NFC", (request.form.get(key) or "").strip(" "))
    check_new_name(n)
    return n


@bp.post("/<name>/carpeta")
def make_folder(name: str) -> Any:
    def act(w: Who, folder: str) -> str:
        n = _name_field()
        check_not_status_file(join(folder, n))
        w.files.make_folder(join(folder, n))
        log.info("web drive mkdir: space=%s user=%s path=%s", w.space.name, w.username,
                 join(folder, n))
        return _("Carpeta «%(n)s» creada.", n=n)

    return _write_action(name, act)


@bp.post("/<name>/renombrar")
def rename(name: str) -> Any:
    def act(w: Who, folder: str) -> str:
        src = form_item()
        n = _name_field()
        dst = join(parent_of(src), n)
        check_not_status_file(dst)
        w.files.move(src, dst)
        log.info("web drive rename: space=%s user=%s %s -> %s", w.space.name, w.username,
                 src, dst)
        return _("Nombre cambiado a «%(n)s».", n=n)

    return _write_action(name, act)


@bp.post("/<name>/mover")
def move(name: str) -> Any:
    def act(w: Who, folder: str) -> str:
        src = form_item()
        dest_folder = clean_rel(request.form.get("destino"))
        dp = w.files.resolve(dest_folder)
        de = w.files.entry(dp)
        if de is None or not de.is_dir:
            raise NotFound(_("La carpeta de destino no existe."))
        sp = w.files.resolve(src)
        if dp == sp or str(dp).startswith(str(sp) + os.sep):
            raise InvalidName(_("No se puede mover una carpeta dentro de sí misma."))
        dst = join(dest_folder, sp.name)
        check_not_status_file(dst)
        w.files.move(src, dst)
        log.info("web drive move: space=%s user=%s %s -> %s", w.space.name, w.username,
                 src, dst)
        return _("Movido a %(d)s.", d=dest_folder)

    return _write_action(name, act)


@bp.post("/<name>/borrar")
def delete(name: str) -> Any:
    def act(w: Who, folder: str) -> str:
        src = form_item()
        result = w.files.delete(src)
        if result.kept:
            kept = "; ".join(pr.message() for pr in result.kept[:5])
            flash(_("Se conservaron %(n)s CFDI protegidos: %(k)s", n=len(result.kept),
                    k=kept), "info")
        return _("Borrado: %(p)s.", p=src)

    return _write_action(name, act)

