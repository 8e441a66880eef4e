"""The trash and earlier versions in the web drive: what was deleted and the
earlier contents of a file, listed, restored, downloaded or (an admin) erased
for good to free room.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from portal.downloads import send_stored
from portal.drive.common import (
    Who,
    bp,
    clean_rel,
    parent_of,
    require,
    status_of,
    title_of,
)
from portal.drive.listing import render_folder
from portal.web import state
from spaces.access import service
from spaces.core import formats
from spaces.core.errors import Forbidden, InvalidName, SpaceError
from spaces.files import quota
from spaces.files.store import store_for

log = logging.getLogger(__name__)


def _trash_page(w: Who, status: int = 200) -> Any:
    from spaces.files import trash

    st = state()
    try:
        usage: quota.Usage | None = quota.usage(st.db, w.space.id)
    except SpaceError:
        usage = None
    items = trash.list_trash(w.files)
    return render_template("drive/trash.html", who=w, space=w.space, items=items,
                           usage=usage, days=st.settings.trash.days,
                           held=trash.held(st.db, w.space.id)), status


@bp.get("/<name>/papelera")
def trash_page(name: str) -> Any:
    """What was deleted, restorable until the sweep (or a full reserve) erases
    it; it lives in the reserve, outside the plan, and the page says so."""
    return _trash_page(require(name))


def _trash_action(name: str, act: Any, *, admin: bool = False) -> Any:
    w = require(name)
    try:
        if admin and not w.is_admin:
            raise Forbidden(_("Sólo un administrador del espacio puede borrar definitivamente "
                              "lo que está en la papelera."))
        service.check_may_write(w.role, w.username, w.space.status)
        message = act(w)
    except SpaceError as exc:
        log.info("web drive trash refused: space=%s user=%s action=%s: %s", w.space.name,
                 w.username, request.endpoint, exc)
        flash(f"{title_of(exc)}: {exc}", "error")
        return _trash_page(w, status_of(exc))
    flash(message, "ok")
    return redirect(url_for("drive.trash_page", name=w.space.name))


@bp.post("/<name>/papelera/<int:item_id>/restaurar")
def trash_restore(name: str, item_id: int) -> Any:
    from spaces.files import trash

    def act(w: Who) -> str:
        path = trash.restore_from_trash(w.files, item_id, by=w.username)
        return _("Restaurado en %(p)s.", p=path)

    return _trash_action(name, act)


@bp.post("/<name>/papelera/<int:item_id>/eliminar")
def trash_erase(name: str, item_id: int) -> Any:
    from spaces.files import trash

    def act(w: Who) -> str:
        freed = trash.delete_from_trash(w.files, item_id, by=w.username)
        return _("Eliminado definitivamente; se liberaron %(b)s.", b=formats.size(freed.bytes))

    return _trash_action(name, act, admin=True)


@bp.post("/<name>/papelera/vaciar")
def trash_empty(name: str) -> Any:
    from spaces.files import trash

    def act(w: Who) -> str:
        freed = trash.empty_trash(w.files, by=w.username)
        return _("Papelera vaciada: %(n)s elementos, %(b)s liberados.", n=freed.items,
                 b=formats.size(freed.bytes))

    return _trash_action(name, act, admin=True)


@bp.post("/<name>/papelera/liberar")
def trash_reclaim(name: str) -> Any:
    """An admin frees room: earlier versions first (oldest first), then the oldest
    trash items; current files are never touched."""
    from spaces.core.settings import parse_size
    from spaces.files import trash

    def act(w: Who) -> str:
        try:
            nbytes = parse_size(request.form.get("cantidad", ""))
        except ValueError:
            raise InvalidName(_("Escriba cuánto liberar, por ejemplo 500M o 2G.")) from None
        freed = trash.reclaim(w.files, nbytes, by=w.username)
        return _("Se liberaron %(b)s (%(n)s versiones anteriores y elementos de la papelera).",
                 b=formats.size(freed.bytes), n=freed.items)

    return _trash_action(name, act, admin=True)


def _versions_page(w: Who, rel: str, status: int = 200) -> Any:
    from spaces.files import versions

    p = w.files.resolve(rel)
    e = w.files.entry(p)
    items = versions.list_versions(w.files, rel)
    return render_template("drive/versions.html", who=w, space=w.space, rel=rel, name=p.name,
                           current=e, items=items, parent=parent_of(rel),
                           fromtimestamp=lambda t: datetime.fromtimestamp(t, UTC)), status


@bp.get("/<name>/versiones")
def versions_page(name: str) -> Any:
    """The earlier versions of one file: download or restore each."""
    w = require(name)
    rel = clean_rel(request.args.get("ruta"))
    try:
        return _versions_page(w, rel)
    except SpaceError as exc:
        flash(str(exc), "error")
        return render_folder(w, parent_of(rel), status_of(exc))


@bp.get("/<name>/versiones/<int:version_id>/descargar")
def version_download(name: str, version_id: int) -> Any:
    from spaces.files import versions

    w = require(name)
    try:
        v, fh = versions.open_version(w.files, version_id)
    except SpaceError as exc:
        flash(str(exc), "error")
        return render_folder(w, "/", status_of(exc))
    base, dot, ext = v.path.rsplit("/", 1)[-1].rpartition(".")
    stamp = v.created_at.strftime("%Y-%m-%d %H%M")
    fname = f"{base} (versión {stamp}){dot}{ext}" if dot else f"{ext} (versión {stamp})"
    return send_stored(store_for(w.files.settings), fh, fname,
                       mimetype="application/octet-stream")


@bp.post("/<name>/versiones/<int:version_id>/restaurar")
def version_restore(name: str, version_id: int) -> Any:
    from spaces.files import versions

    w = require(name)
    rel = clean_rel(request.form.get("ruta"))
    try:
        service.check_may_write(w.role, w.username, w.space.status)
        path = versions.restore_version(w.files, version_id, by=w.username)
    except SpaceError as exc:
        log.info("web drive version restore refused: space=%s user=%s version=%s: %s",
                 w.space.name, w.username, version_id, exc)
        flash(f"{title_of(exc)}: {exc}", "error")
        try:
            return _versions_page(w, rel, status_of(exc))
        except SpaceError:
            return render_folder(w, "/", status_of(exc))
    flash(_("Versión restaurada; la anterior quedó guardada como versión."), "ok")
    return redirect(url_for("drive.versions_page", name=w.space.name, ruta=path))
