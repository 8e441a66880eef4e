"""The audit log in the portal: a space's changes for its administrators (the
owner account, operators and members with the admin role), every space's for
operators. Filter by dates, user, action and path; export CSV.

Reads only: there is no form or route that changes a record (see
:mod:`spaces.core.audit`). Anyone who may not administer the space gets 404, like
every space page, so a member cannot tell the page exists.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Blueprint, Response, abort, render_template, request, stream_with_context
from flask_babel import lazy_gettext as _l

from portal.space import may_admin
from portal.web import operator_required, state
from spaces.access import service
from spaces.core import audit
from spaces.core.audit import Action
from spaces.core.errors import NotFound

bp = Blueprint("audit", __name__)

PAGE = 200

#: What each action is called on the page (the CSV keeps the code and the Spanish).
LABELS: dict[str, Any] = {
    Action.UPLOAD: _l("Archivo subido"),
    Action.OVERWRITE: _l("Archivo sobrescrito"),
    Action.DELETE: _l("Borrado"),
    Action.MOVE: _l("Movido o renombrado"),
    Action.COPY: _l("Copiado"),
    Action.MKDIR: _l("Carpeta creada"),
    Action.TRASH_RESTORE: _l("Restaurado de la papelera"),
    Action.TRASH_PURGE: _l("Eliminado de la papelera"),
    Action.VERSION_RESTORE: _l("Versión restaurada"),
    Action.VERSION_PURGE: _l("Versión eliminada"),
    Action.LOCK_STOLEN: _l("Bloqueo quitado a otro usuario"),
    Action.MEMBER_ADDED: _l("Usuario agregado"),
    Action.MEMBER_REMOVED: _l("Usuario eliminado"),
    Action.ROLE_CHANGED: _l("Rol cambiado"),
    Action.PASSWORD_CHANGED: _l("Contraseña cambiada"),
    Action.SPACE_CREATED: _l("Espacio creado"),
    Action.TIER_CHANGED: _l("Plan cambiado"),
    Action.SUSPENDED: _l("Espacio suspendido"),
    Action.REACTIVATED: _l("Espacio reactivado"),
    Action.READ_ONLY: _l("Espacio en solo lectura"),
    Action.CFDI_PROTECTED: _l("CFDI en resguardo"),
    Action.CFDI_RELEASED: _l("CFDI liberado"),
    Action.HOLD_PLACED: _l("Retención legal puesta"),
    Action.HOLD_LIFTED: _l("Retención legal levantada"),
    Action.SHARE_CREATED: _l("Enlace compartido creado"),
    Action.SHARE_REVOKED: _l("Enlace compartido revocado"),
    Action.INVOICE_ISSUED: _l("Factura emitida"),
    Action.INVOICE_CANCELLED: _l("Factura cancelada"),
    Action.INVOICE_CANCEL_REJECTED: _l("Cancelación de factura rechazada por el receptor"),
    Action.ORDER_REFUNDED: _l("Pedido reembolsado"),
}


def _day(key: str) -> date | None:
    raw = (request.args.get(key) or "").strip()
    try:
        return date.fromisoformat(raw) if raw else None
    except ValueError:
        return None


def _filter(space_id: int | None) -> audit.Filter:
    a = request.args
    action = a.get("accion") or None
    return audit.Filter(
        space_id=space_id, date_from=_day("desde"), date_to=_day("hasta"),
        user=(a.get("usuario") or "").strip() or None,
        action=action if action in {x.value for x in Action} else None,
        path=(a.get("ruta") or "").strip() or None,
        space=None if space_id is not None else ((a.get("espacio") or "").strip() or None))


def _before() -> int | None:
    raw = request.args.get("antes") or ""
    return int(raw) if raw.isdigit() else None


def _csv(f: audit.Filter, filename: str) -> Response:
    def body() -> Any:
        yield from audit.csv_lines(state().db, f)  # with a BOM, for Excel's accents

    return Response(stream_with_context(body()), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _page(template_args: dict[str, Any], f: audit.Filter, filename: str) -> Any:
    if request.args.get("formato") == "csv":
        return _csv(f, filename)
    entries = audit.query(state().db, f, limit=PAGE, before_id=_before())
    args = {k: v for k, v in request.args.items() if k not in ("antes", "formato")}
    return render_template("space/audit.html", entries=entries, labels=LABELS,
                           actions=list(Action), args=args, page=PAGE,
                           older=entries[-1].id if len(entries) == PAGE else None,
                           **template_args)


@bp.get("/espacios/<name>/bitacora")
def space_log(name: str) -> Any:
    if not may_admin(name):
        abort(404)
    try:
        space = service.get_space(state().db, name)
    except NotFound:
        abort(404)
    return _page({"space": space}, _filter(space.id), f"bitacora-{space.name}.csv")


@bp.get("/operador/bitacora")
@operator_required
def operator_log() -> Any:
    return _page({"space": None}, _filter(None), "bitacora-resguardo.csv")
