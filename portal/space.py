"""Space administration, for the owner account, operators and drive users with
the admin role: users (add, remove, reset password by e-mail link, change
role) within the tier's limit, usage, orders and receipts, and how to map the
drive on Windows (with a downloadable .reg helper)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _

from portal.forms import AddMemberForm, LockBreakForm, MemberActionForm
from portal.web import audit_actor, current_account, current_member, links, state
from spaces.access import service
from spaces.commerce import billing, space_admin
from spaces.core.errors import InvalidName, NotFound, SpaceError
from spaces.files import layout, listings, locks, quota

bp = Blueprint("space", __name__, url_prefix="/espacios")


def may_admin(name: str) -> bool:
    st = state()
    a = current_account()
    m = current_member()
    if m is not None and m.space_name != name.strip().lower():
        m = None
    return space_admin.can_admin(st.db, name, account_id=a.id if a else None,
                                 member_id=m.id if m else None)


def _space_or_404(name: str) -> service.SpaceInfo:
    # Someone who may not administer a space cannot tell it from a missing one.
    if not may_admin(name):
        abort(404)
    try:
        return service.get_space(state().db, name)
    except NotFound:
        abort(404)


@bp.get("/<name>/")
def overview(name: str) -> Any:
    st = state()
    space = _space_or_404(name)
    try:
        usage: quota.Usage | None = quota.usage(st.db, space.id)
    except SpaceError:
        usage = None
    members = space_admin.member_rows(st.db, space.name)
    add_form = AddMemberForm(formdata=None)
    actions = {}
    for m in members:
        f = MemberActionForm(prefix=f"m{m.id}", formdata=None)
        f.username.data, f.role.data = m.username, m.role
        actions[m.id] = f
    orders = billing.list_orders(st.db, space_name=space.name)
    try:
        active_locks: list[locks.LockInfo] | None = locks.space_locks(st.settings, st.db,
                                                                      space.name)
    except SpaceError:
        active_locks = None
    oversized = listings.oversized_folders_cached(st.settings, space.name,
                                                  layout.space_dir(st.settings, space.name)
                                                  / "files")
    return render_template("space/overview.html", space=space, usage=usage, members=members,
                           oversized=oversized,
                           add_form=add_form, actions=actions, orders=orders,
                           locks=active_locks, lock_form=LockBreakForm(formdata=None),
                           drive_url=links().drive(space.name),
                           https=links().base_url.startswith("https://"))


@bp.post("/<name>/bloqueos/quitar")
def break_lock(name: str) -> Any:
    """A space admin removes any member's lock (Office left it behind on a
    computer that crashed, or someone holds a document too long): recorded
    as ``lock_stolen`` with who did it."""
    st = state()
    space = _space_or_404(name)
    form = LockBreakForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        lock = locks.break_lock(st.settings, st.db, space.id, space.name, form.token.data or "",
                                actor=audit_actor())
        flash(_("Bloqueo quitado: %(path)s ya no está bloqueado por %(user)s.",
                path=lock.path, user=lock.principal), "ok")
    except SpaceError as exc:
        flash(str(exc), "error")
    return redirect(url_for("space.overview", name=space.name))


@bp.post("/<name>/usuarios")
def add_member(name: str) -> Any:
    st = state()
    space = _space_or_404(name)
    form = AddMemberForm()
    if form.validate_on_submit():
        try:
            space_admin.invite_member(st.settings, st.db, st.mailer, links(), space.name,
                                      form.username.data or "", form.email.data or "",
                                      form.role.data or "editor", actor=audit_actor())
            flash(_("Usuario agregado: le enviamos un enlace para elegir su contraseña."),
                  "ok")
        except SpaceError as exc:
            flash(str(exc), "error")
    else:
        flash(_("Revise los datos del usuario."), "error")
    return redirect(url_for("space.overview", name=space.name))


@bp.post("/<name>/usuarios/<int:member_id>")
def member_action(name: str, member_id: int) -> Any:
    st = state()
    space = _space_or_404(name)
    form = MemberActionForm(prefix=f"m{member_id}")
    if not form.validate_on_submit():
        abort(400)
    user = form.username.data or ""
    me = current_member()
    try:
        if form.action.data == "role":
            if me and me.username == user and form.role.data != "admin":
                raise InvalidName(_("No puede quitarse a sí mismo el rol de "
                                            "administrador."))
            service.set_role(st.db, space.name, user, form.role.data or "",
                             actor=audit_actor())
            flash(_("Rol cambiado."), "ok")
        elif form.action.data == "remove":
            if me and me.username == user:
                raise InvalidName(_("No puede eliminarse a sí mismo."))
            service.remove_member(st.db, space.name, user, actor=audit_actor())
            flash(_("Usuario eliminado. Sus archivos siguen en la unidad."), "ok")
        elif form.action.data == "reset":
            space_admin.send_member_link(st.settings, st.db, st.mailer, links(), space.name, user)
            flash(_("Le enviamos al usuario un enlace para elegir una contraseña nueva."), "ok")
        else:
            abort(400)
    except SpaceError as exc:
        flash(str(exc), "error")
    return redirect(url_for("space.overview", name=space.name))


@bp.get("/<name>/resguardo-windows.reg")
def windows_helper(name: str) -> Any:
    """Registry values the Windows WebDAV client needs: files up to 4 GB, listings of
    large folders, and Basic authentication over HTTP only when the service is not
    on HTTPS."""
    space = _space_or_404(name)
    https = links().base_url.startswith("https://")
    level = 1 if https else 2
    text = "\r\n".join([
        "Windows Registry Editor Version 5.00",
        "",
        f"; Resguardo: unidad {links().drive(space.name)}",
        "; Permite archivos de hasta 4 GB en la unidad de red WebDAV"
        + ("." if https else " y la autenticación Básica por HTTP (sólo pruebas)."),
        "; FileAttributesLimitInBytes: el Explorador lista carpetas de miles de archivos "
        "(sin él, una carpeta de más de unos 1,200 se ve vacía).",
        "; Después de importarlo reinicie el servicio WebClient o el equipo.",
        "",
        r"[HKEY_LOCAL_MACHINE\SYSTEM\CurrentControlSet\Services\WebClient\Parameters]",
        '"FileSizeLimitInBytes"=dword:ffffffff',
        f'"FileAttributesLimitInBytes"=dword:{listings.WINDOWS_MAX_LIMIT:08x}',
        f'"BasicAuthLevel"=dword:{level:08x}',
        "",
    ])
    return Response(("\ufeff" + text).encode("utf-16-le"),
                    mimetype="application/octet-stream",
                    headers={"Content-Disposition":
                             f'attachment; filename="resguardo-{space.name}.reg"'})
