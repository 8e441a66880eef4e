"""Cancelling a stamped factura through the PAC with SAT's motivos 01–04, the
cancellations that wait for the receptor's answer, and their audit on the
spaces of the factura's orders (a cancelled global factura releases its orders
for the month's next one).

Replacing a factura (motivo 01, a new one issued first) is
:func:`spaces.commerce.invoicing.substitute`.
"""

from __future__ import annotations

import logging

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from spaces.commerce.invoice_records import InvoiceInfo, audit_detail, spaces_of, to_info
from spaces.commerce.pac import CancelRequest, Pac, make_pac
from spaces.core import audit, plans
from spaces.core.db import Database, affected
from spaces.core.errors import AlreadyExists, Forbidden, InvalidName, NotFound, SpaceError
from spaces.core.models import Invoice, Order, utcnow
from spaces.core.settings import Settings
from spaces.sat import catalogs

log = logging.getLogger(__name__)


def cancel(settings: Settings, db: Database, invoice_id: int, motivo: str, *,
           actor: audit.Actor, replacement: str | None = None,
           pac: Pac | None = None) -> InvoiceInfo:
    """Cancel a stamped factura through the PAC with SAT's ``motivo``: 01 (errors,
    replaced: ``replacement`` is the UUID of the factura that replaces it, see
    :func:`substitute`), 02 (errors, not replaced), 03 (the operation did not
    happen), 04 (a global factura: a sale in it got its own factura). Audited on
    the spaces of its orders. A cancelled global factura releases its orders for
    the month's next one."""
    pac = pac or make_pac(settings)
    motivo = motivo.strip()
    if motivo not in catalogs.MOTIVOS_CANCELACION:
        raise InvalidName("Elija el motivo de cancelación del SAT (01, 02, 03 o 04).")
    with db.session() as s:
        inv = s.get(Invoice, invoice_id)
        if inv is None or inv.uuid is None:
            raise NotFound("No existe esa factura timbrada.")
        if inv.status not in ("valid", "replacing"):
            raise Forbidden(f"La factura {inv.serie}-{inv.folio} no se puede cancelar: está "
                            f"«{inv.status}».")
        if motivo == "04" and inv.kind != "global":
            raise InvalidName("El motivo 04 es para una factura global.")
        if motivo == "01":
            sub = s.scalar(select(Invoice).where(Invoice.uuid == (replacement or ""))
                           .where(Invoice.replaces_uuid == inv.uuid)
                           .where(Invoice.status == "valid"))
            if sub is None:
                raise InvalidName("El motivo 01 necesita la factura que la sustituye: use "
                                  "«Sustituir».")
        elif motivo != "01":
            replacement = None
        before = inv.status
        # A replaced factura is not live (its substitute is): it stays out of the
        # one-live-factura index while its cancellation is asked.
        claim = "cancelling" if before == "valid" else "cancelling_01"
        if affected(s.execute(update(Invoice).where(Invoice.id == invoice_id)
                              .where(Invoice.status == before)
                              .values(status=claim))) != 1:
            raise AlreadyExists("Otra persona está cancelando esa factura.")
        request = CancelRequest(inv.uuid, settings.invoicing.issuer_rfc, inv.receptor_rfc,
                                f"{plans.from_cents(inv.total_cents)}", motivo, replacement)
    try:
        result = pac.cancel(request)
    except SpaceError:
        with db.session() as s:
            s.execute(update(Invoice).where(Invoice.id == invoice_id)
                      .where(Invoice.status == claim).values(status=before))
        raise
    with db.session() as s:
        inv = s.get(Invoice, invoice_id)
        assert inv is not None
        # A replaced one waiting for the receptor stays out of the live index too.
        inv.status = ("cancelled" if result.status == "cancelled"
                      else "cancel_pending" if claim == "cancelling" else "pending_01")
        inv.cancel_reason, inv.cancel_replacement = motivo, replacement
        inv.cancelled_at, inv.cancelled_by, inv.cancel_ack = utcnow(), actor.user, result.ack
        reason = catalogs.MOTIVOS_CANCELACION[motivo]
        _record_cancellation(s, inv, actor, audit.Action.INVOICE_CANCELLED,
                             f"motivo {motivo} ({reason})"
                             + (f"; sustituida por {replacement}" if replacement else "")
                             + ("" if inv.status == "cancelled" else "; en espera del receptor"))
        info = to_info(s, inv)
    log.info("invoice cancelled: %s uuid=%s motivo=%s by=%s status=%s", info.name, info.uuid,
             motivo, actor.user, info.status)
    return info


def _record_cancellation(s: Session, inv: Invoice, actor: audit.Actor, action: audit.Action,
                         what: str) -> None:
    """Audit a cancellation's step on the spaces of the factura's orders; a cancelled
    global factura releases its orders for the month's next one."""
    order_ids = ([inv.order_id] if inv.order_id else
                 list(s.scalars(select(Order.id).where(Order.global_invoice_id == inv.id))))
    if inv.kind == "global" and inv.status == "cancelled":
        s.execute(update(Order).where(Order.global_invoice_id == inv.id)
                  .values(invoice_state="none", global_invoice_id=None))
    for sid, name in spaces_of(s, order_ids):
        audit.record(s, sid, action, actor=actor, space_name=name,
                     detail=f"{audit_detail(inv, inv.uuid)}; {what}")


def refresh_cancellations(settings: Settings, db: Database, pac: Pac | None = None) -> int:
    """Ask the PAC how the cancellations waiting for their receptor ended: cancelled,
    or rejected (the factura is in force again). Returns how many ended."""
    pac = pac or make_pac(settings)
    with db.session() as s:
        waiting = list(s.scalars(select(Invoice).where(
            Invoice.status.in_(("cancel_pending", "pending_01")))))
        requests = [(inv.id, inv.status, CancelRequest(
            inv.uuid or "", settings.invoicing.issuer_rfc, inv.receptor_rfc,
            f"{plans.from_cents(inv.total_cents)}", inv.cancel_reason or "",
            inv.cancel_replacement)) for inv in waiting]
    ended = 0
    for invoice_id, status, request in requests:
        result = pac.cancellation_status(request)
        if result is None or result.status == "pending":
            continue
        with db.session() as s:
            inv = s.get(Invoice, invoice_id)
            if inv is None or inv.status != status:
                continue
            if result.status == "cancelled":
                inv.status, inv.cancel_ack = "cancelled", result.ack or inv.cancel_ack
                _record_cancellation(s, inv, audit.SYSTEM, audit.Action.INVOICE_CANCELLED,
                                     f"motivo {inv.cancel_reason}: el receptor aceptó")
            else:
                inv.status = "valid" if status == "cancel_pending" else "replacing"
                _record_cancellation(s, inv, audit.SYSTEM,
                                     audit.Action.INVOICE_CANCEL_REJECTED,
                                     f"motivo {inv.cancel_reason}: el receptor la rechazó")
            ended += 1
        log.info("invoice cancellation ended: id=%s %s", invoice_id, result.status)
    return ended
