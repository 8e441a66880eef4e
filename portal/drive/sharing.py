"""Share links: the drive's pages to make, list, switch on or off and revoke
them (``drive`` blueprint, ``/unidad/<space>/enlaces``), and what a visitor
opens (the ``share`` blueprint, ``/compartido/<token>``): a file or a folder's
listing and downloads, behind the link's password when it has one.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import (
    Blueprint,
    abort,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _

from portal.downloads import whole_body
from portal.drive.common import (
    bp,
    clean_rel,
    form_item,
    join,
    require,
    status_of,
    title_of,
)
from portal.drive.download import file_response, zip_response
from portal.drive.listing import Row, breadcrumbs, list_folder, render_folder
from portal.web import state
from spaces.access import service, throttle
from spaces.access.files import space_files
from spaces.core import audit
from spaces.core.errors import InvalidName, NotFound, SpaceError
from spaces.files.storage import SpaceFiles

log = logging.getLogger(__name__)

share_bp = Blueprint("share", __name__, url_prefix="/compartido")

#: Link ids whose password this browser session has given (bounded).
_SHARES_OK = "shares_ok"


def _link_url(token: str) -> str:
    from portal.web import links

    return links().base_url + url_for("share.view_link", token=token)


@bp.get("/<name>/enlaces")
def share_list(name: str) -> Any:
    """The space admin sees and revokes every link; other users their own."""
    from spaces.files import shares

    w = require(name)
    st = state()
    items = shares.list_links(st.db, w.space.id,
                              created_by=None if w.is_admin else w.username)
    return render_template("drive/shares.html", who=w, space=w.space, items=items,
                           enabled=shares.enabled(st.db, w.space.id))


@bp.post("/<name>/enlaces/activar")
def share_toggle(name: str) -> Any:
    from spaces.files import shares

    w = require(name)
    if not w.is_admin:
        abort(403)
    on = request.form.get("activar") == "1"
    shares.set_enabled(state().db, w.space.id, on)
    log.info("web drive share links %s: space=%s user=%s", "on" if on else "off",
             w.space.name, w.username)
    flash(_("Enlaces para compartir activados.") if on else
          _("Enlaces para compartir desactivados: los enlaces existentes dejan de abrir."),
          "ok")
    return redirect(url_for("drive.share_list", name=w.space.name))


@bp.post("/<name>/enlaces/crear")
def share_create(name: str) -> Any:
    from spaces.files import shares

    w = require(name)
    folder = clean_rel(request.form.get("carpeta"))
    try:
        service.check_may_write(w.role, w.username, w.space.status)
        rel = form_item()
        p = w.files.resolve(rel)
        e = w.files.entry(p)
        if e is None:
            raise NotFound(_("No existe."))
        try:
            days = int(request.form.get("dias") or shares.DEFAULT_DAYS)
        except ValueError:
            raise InvalidName(_("Vigencia no válida.")) from None
        token, info = shares.create(state().db, w.space.id, w.files.index_path(p),
                                    is_dir=e.is_dir, inode=e.inode, created_by=w.username,
                                    days=days,
                                    password=request.form.get("clave") or "")
    except SpaceError as exc:
        flash(f"{title_of(exc)}: {exc}", "error")
        return render_folder(w, folder, status_of(exc))
    audit.record(state().db, w.space.id, audit.Action.SHARE_CREATED, actor=w.files.actor,
                 path=info.path, space_name=w.space.name,
                 detail=f"vence {info.expires_at:%Y-%m-%d %H:%M} UTC"
                 + (", con contraseña" if info.has_password else ""))
    return render_template("drive/share_created.html", who=w, space=w.space, link=info,
                           url=_link_url(token), folder=folder), 201


@bp.post("/<name>/enlaces/<int:link_id>/revocar")
def share_revoke(name: str, link_id: int) -> Any:
    from spaces.files import shares

    w = require(name)
    try:
        path = shares.revoke(state().db, w.space.id, link_id,
                             created_by=None if w.is_admin else w.username)
        audit.record(state().db, w.space.id, audit.Action.SHARE_REVOKED, actor=w.files.actor,
                     path=path, space_name=w.space.name)
        flash(_("Enlace revocado: ya no abre."), "ok")
    except SpaceError as exc:
        flash(str(exc), "error")
    return redirect(url_for("drive.share_list", name=w.space.name))


def _opened(token: str) -> tuple[Any, SpaceFiles]:
    """The opened link and its space's files; aborts with the Spanish page: 404
    for an unknown token, 410 for an expired, revoked or switched-off link, or
    one whose object was deleted or replaced (the link serves only what it was
    made for, wherever that object now is)."""
    from spaces.files import shares

    st = state()
    try:
        opened = shares.open_link(st.db, token)
        info = service.get_space(st.db, opened.space_name)
        files = space_files(st.settings, st.db, info.id, info.name)
        try:
            e = files.entry(files.resolve(opened.link.path))
        except SpaceError:
            e = None
        shares.check_object(st.db, opened.link, e.inode if e is not None else None)
    except shares.Gone as exc:
        abort(make_response(render_template("drive/share_gone.html", message=str(exc)), 410))
    except NotFound:
        abort(make_response(render_template("drive/share_gone.html", message=None), 404))
    return opened, files


def _share_rel(root: str, sub: str | None) -> str:
    """A path below the shared ``root``: ``sub`` cannot climb out because
    SpaceFiles.resolve refuses '..' segments."""
    inner = clean_rel(sub)
    return root if inner == "/" else root.rstrip("/") + inner


@share_bp.route("/<token>", methods=["GET", "POST"])
def view_link(token: str) -> Any:
    from spaces.files import shares

    opened, files = _opened(token)
    link = opened.link
    ok: list[int] = list(session.get(_SHARES_OK, []))
    if link.has_password and link.id not in ok:
        st = state()
        who, addr = throttle.share(link.id), throttle.address(request.remote_addr)
        if request.method == "POST":
            if st.throttle.blocked(who, addr):
                flash(_("Demasiados intentos. Espere un minuto e intente de nuevo."), "error")
                return render_template("drive/share_password.html", token=token), 429
            if shares.check_password(opened, request.form.get("clave") or ""):
                st.throttle.success(who)
                session[_SHARES_OK] = (ok + [link.id])[-20:]
                return redirect(url_for("share.view_link", token=token,
                                        ruta=request.args.get("ruta")))
            st.throttle.failure(who, addr)
            flash(_("Contraseña incorrecta."), "error")
            return render_template("drive/share_password.html", token=token), 403
        return render_template("drive/share_password.html", token=token), 401
    try:
        rel = _share_rel(link.path, request.args.get("ruta") if link.is_dir else None)
        p = files.resolve(rel)
        e = files.entry(p)
        if e is None:
            raise NotFound(_("Lo compartido ya no existe."))
        if not e.is_dir:
            return render_template("drive/share_view.html", token=token, link=link,
                                   name=p.name, size=e.size, rows=None, sub="/")
        sub = rel[len(link.path):] or "/"
        rows = list_folder(files, rel)
        for_rows = [Row(r.name, join(sub, r.name), r.is_dir, r.size, r.modified)
                    for r in rows]
        return render_template("drive/share_view.html", token=token, link=link,
                               name=p.name, size=None, rows=for_rows, sub=sub,
                               crumbs=breadcrumbs(sub))
    except SpaceError as exc:
        return render_template("drive/share_gone.html", message=str(exc)), status_of(exc)


@share_bp.get("/<token>/descargar")
def share_download(token: str) -> Any:
    from spaces.files import shares

    opened, files = _opened(token)
    link = opened.link
    if link.has_password and link.id not in session.get(_SHARES_OK, []):
        return redirect(url_for("share.view_link", token=token))
    try:
        rel = _share_rel(link.path, request.args.get("ruta") if link.is_dir else None)
        p = files.resolve(rel)
        e = files.entry(p)
        if e is None:
            raise NotFound(_("Lo compartido ya no existe."))
        resp = zip_response(files, rel) if e.is_dir else file_response(files, rel)
    except SpaceError as exc:
        return render_template("drive/share_gone.html", message=str(exc)), status_of(exc)
    if whole_body(resp):  # a 304 or a later piece of a download is not another one
        shares.count_download(state().db, link.id)
        log.info("share link download: space=%s link=%s path=%s addr=%s", opened.space_name,
                 link.id, rel, request.remote_addr)
    return resp

