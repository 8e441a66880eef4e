"""The CFDI page of a space: search the index, totals per month, duplicates,
protected-until dates, and exports (CSV of the result, ZIP of its XML files).

For the owner account, operators and every user of that space logged in to the
portal (accountants search; only admins administer). Reads only: nothing here
changes files, and the protection rules live in :mod:`spaces.cfdi.retention`.
"""

from __future__ import annotations

import io
import zipfile
from collections import OrderedDict
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import Blueprint, Response, abort, render_template, request
from flask_babel import gettext as _

from portal.space import may_admin
from portal.web import current_account, current_member, state
from spaces.access import service
from spaces.access.files import space_files
from spaces.cfdi import index as cfdi_index
from spaces.core import csvexport
from spaces.core.errors import NotFound, SpaceError
from spaces.core.models import CfdiDocument

bp = Blueprint("cfdi", __name__, url_prefix="/espacios")

TIPOS = ("I", "E", "T", "N", "P", "RET")
CSV_FIELDS = ("uuid", "tipo", "version", "fecha", "fecha_timbrado", "emisor_rfc",
              "emisor_nombre", "receptor_rfc", "receptor_nombre", "total", "monto_pagado",
              "moneda", "path", "size", "sha256", "ingested_at", "protected_until",
              "duplicate_of", "conflict", "cancelled", "category")
MAX_ZIP_FILES = 5000


def _space(name: str) -> service.SpaceInfo:
    m = current_member()
    member_here = m is not None and m.space_name == name.strip().lower()
    if not (member_here or may_admin(name)):
        abort(404)  # someone without access cannot tell it from a missing space
    try:
        space = service.get_space(state().db, name)
    except NotFound:
        abort(404)
    a = current_account()
    if space.status == "suspended" and not (a is not None and a.is_operator):
        # What it holds is out of reach while suspended, as on the drive; its users'
        # sessions already ended, and the owner account reads it again once reactivated.
        abort(403, _("El espacio está suspendido: sus documentos no se pueden consultar ni "
                     "descargar. Escríbanos para reactivarlo."))
    return space


def _query() -> cfdi_index.Query:
    a = request.args

    def amount(key: str) -> str | None:
        raw = (a.get(key) or "").strip().replace(",", "")
        if not raw:
            return None
        try:
            Decimal(raw)
        except InvalidOperation:
            return None
        return raw

    tipo = a.get("tipo") or None
    return cfdi_index.Query(
        uuid=(a.get("uuid") or "").strip() or None,
        rfc=(a.get("rfc") or "").strip() or None,
        date_from=(a.get("desde") or "").strip() or None,
        date_to=(a.get("hasta") or "").strip() or None,
        tipo=tipo if tipo in TIPOS else None,
        min_total=amount("min"), max_total=amount("max"))


def _monthly(docs: list[CfdiDocument]) -> OrderedDict[str, dict[str, Any]]:
    months: OrderedDict[str, dict[str, Any]] = OrderedDict()
    for d in docs:
        if d.category != "index" or d.duplicate_of is not None or not d.fecha:
            continue
        row = months.setdefault(d.fecha[:7], {"count": 0, "total": Decimal("0")})
        row["count"] += 1
        try:
            row["total"] += Decimal(d.total or "0")
        except InvalidOperation:
            pass
    return months


@bp.get("/<name>/cfdi")
def search(name: str) -> Any:
    space = _space(name)
    q = _query()
    docs = cfdi_index.search(state().db, space.id, q)
    fmt = request.args.get("formato")
    if fmt == "csv":
        return _csv(space, docs)
    if fmt == "zip":
        return _zip(space, docs)
    originals = {d.id: d for d in docs}
    duplicates = [d for d in docs if d.duplicate_of is not None]
    return render_template(
        "space/cfdi.html", space=space, q=q, docs=docs, tipos=TIPOS,
        months=_monthly(docs), duplicates=duplicates, originals=originals,
        custody=cfdi_index.custody_count(state().db, space.id),
        args=request.args)


def _csv(space: service.SpaceInfo, docs: list[CfdiDocument]) -> Response:
    rows = ([getattr(d, k) for k in CSV_FIELDS] for d in docs)
    return Response(csvexport.chunks(CSV_FIELDS, rows), mimetype="text/csv",
                    headers={"Content-Disposition":
                             f'attachment; filename="cfdi-{space.name}.csv"'})


def _zip(space: service.SpaceInfo, docs: list[CfdiDocument]) -> Response:
    if len(docs) > MAX_ZIP_FILES:
        abort(413, _("Demasiados documentos para un ZIP: acote la búsqueda."))
    files = space_files(state().settings, state().db, space.id, space.name)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for d in docs:
            try:
                p = files.resolve(d.path)
                z.write(p, arcname=d.path.lstrip("/"))
            except (OSError, SpaceError):  # a file gone meanwhile is skipped
                continue
    return Response(buf.getvalue(), mimetype="application/zip",
                    headers={"Content-Disposition":
                             f'attachment; filename="cfdi-{space.name}.zip"'})
