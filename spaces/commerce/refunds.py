"""Refunds: an operator records that a paid order's money went back to the customer.

The money itself moves in the payment gateway's own dashboard (the sandbox has
none); what Resguardo does is keep its records and the fiscal side straight, in
this order, so nothing is recorded unless all of it can be:

1. the order's own factura, if it has one in force, is cancelled through the PAC
   with SAT's motivo 03 ("no se llevó a cabo la operación");
2. the order becomes ``refunded`` (a conditional UPDATE from ``paid``: twice is
   refused), which also keeps it out of any later global factura;
3. a ``refunded`` payment event is recorded (the operator's payments list) and an
   ``order_refunded`` record goes in the audit log of the order's spaces.

A sale already in a month's global factura cannot be taken out of it by a
cancellation (the global one has every other sale of the month): SAT asks for a
CFDI de Egreso (nota de crédito) for it, which Resguardo does not issue; the
refund is recorded and the result says so, for the operator's accountant.

The spaces the order paid for are not touched: the operator decides (change the
tier, suspend) with the usual tools, each audited there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select, update

from spaces.commerce import invoice_cancel
from spaces.commerce.pac import Pac
from spaces.core import audit, plans
from spaces.core.db import Database, affected
from spaces.core.errors import AlreadyExists, Forbidden, NotFound
from spaces.core.models import Invoice, Order, OrderItem, PaymentEvent, Space
from spaces.core.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Refund:
    reference: str
    amount: str
    #: What happened to its factura: "cancelada" (its UUID), "nota de crédito
    #: pendiente" (in a global factura), or "sin factura".
    factura: str


def refund_order(settings: Settings, db: Database, reference: str, *, actor: audit.Actor,
                 pac: Pac | None = None) -> Refund:
    """Record the refund of a paid order (see the module docstring)."""
    with db.session() as s:
        order = s.scalar(select(Order).where(Order.reference == reference))
        if order is None:
            raise NotFound("No existe ese pedido.")
        if order.status != "paid":
            raise Forbidden(f"El pedido {reference} no está pagado (está «{order.status}»).")
        live = s.scalar(select(Invoice).where(Invoice.order_id == order.id)
                        .where(Invoice.status.in_(("valid", "stamping", "cancelling",
                                                   "cancel_pending"))))
        live_id, live_status = (live.id, live.status) if live else (None, None)
        state, total_cents, order_id = order.invoice_state, order.total_cents, order.id
        gateway = order.gateway
    if live_status in ("stamping", "cancelling", "cancel_pending"):
        raise Forbidden("La factura de este pedido se está emitiendo o cancelando: intente de "
                        "nuevo cuando termine.")
    factura = "sin factura"
    if live_id is not None:
        done = invoice_cancel.cancel(settings, db, live_id, "03", actor=actor, pac=pac)
        factura = f"cancelada ({done.uuid})"
    elif state == "global":
        factura = ("en la factura global del mes: emita una nota de crédito (CFDI de Egreso) "
                   "al público en general por esta venta")
    amount = plans.format_mxn(plans.from_cents(total_cents))
    with db.session() as s:
        if affected(s.execute(update(Order).where(Order.id == order_id)
                              .where(Order.status == "paid")
                              .values(status="refunded"))) != 1:
            raise AlreadyExists(f"El pedido {reference} ya se reembolsó.")
        detail = f"reembolso registrado por {actor.user}; factura {factura}"
        s.add(PaymentEvent(gateway=gateway, event_id=f"refund-{reference}", order_id=order_id,
                           outcome="refunded", amount_cents=total_cents,
                           currency=settings.billing.currency[:3], detail=detail[:500]))
        names = sorted(set(s.scalars(select(OrderItem.space_name)
                                     .where(OrderItem.order_id == order_id))))
        for sid, name in s.execute(select(Space.id, Space.name).where(Space.name.in_(names))):
            audit.record(s, sid, audit.Action.ORDER_REFUNDED, actor=actor, space_name=name,
                         detail=f"pedido {reference}, {amount}; factura {factura}")
    log.info("order refunded: %s amount=%s by=%s factura=%s", reference, amount, actor.user,
             factura)
    return Refund(reference, amount, factura)
