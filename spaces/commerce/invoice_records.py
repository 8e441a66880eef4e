"""Facturas as stored: what one says (:class:`InvoiceInfo`), finding and reading
them (by id, by order, a search), their XML and PDF, who may see one, and which
spaces a factura concerns (where its audit entries go).

Issuing is :mod:`spaces.commerce.invoicing`; cancelling, :mod:`spaces.commerce.invoice_cancel`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from spaces.core import plans
from spaces.core.db import Database
from spaces.core.errors import NotFound
from spaces.core.models import Invoice, Order, OrderItem, Space


@dataclass(frozen=True)
class InvoiceInfo:
    id: int
    kind: str
    order_reference: str | None
    account_id: int | None
    period: str | None
    status: str
    serie: str
    folio: str
    uuid: str | None
    pac: str
    sandbox: bool
    receptor_rfc: str
    receptor_nombre: str
    uso_cfdi: str
    forma_pago: str
    subtotal: Decimal
    discount: Decimal
    tax: Decimal
    total: Decimal
    fecha: str
    created_at: datetime
    stamped_at: datetime | None
    replaces_uuid: str | None
    cancel_reason: str | None
    cancel_replacement: str | None
    cancelled_at: datetime | None
    cancelled_by: str | None

    @property
    def name(self) -> str:
        """"RG-12": serie and folio, what the customer calls it."""
        return f"{self.serie}-{self.folio}"

    @property
    def live(self) -> bool:
        return self.status in ("valid", "stamping", "cancelling", "cancel_pending")


def to_info(s: Session, inv: Invoice) -> InvoiceInfo:
    """What the stored factura says (inside the caller's session)."""
    ref = s.scalar(select(Order.reference).where(Order.id == inv.order_id)) \
        if inv.order_id else None
    c = plans.from_cents
    return InvoiceInfo(inv.id, inv.kind, ref, inv.account_id, inv.period, inv.status,
                       inv.serie, inv.folio, inv.uuid, inv.pac, inv.sandbox, inv.receptor_rfc,
                       inv.receptor_nombre, inv.uso_cfdi, inv.forma_pago,
                       c(inv.subtotal_cents), c(inv.discount_cents), c(inv.tax_cents),
                       c(inv.total_cents), inv.fecha, inv.created_at, inv.stamped_at,
                       inv.replaces_uuid, inv.cancel_reason, inv.cancel_replacement,
                       inv.cancelled_at, inv.cancelled_by)


# -- reading --------------------------------------------------------------------------------

def get_invoice(db: Database, invoice_id: int) -> InvoiceInfo:
    with db.session() as s:
        inv = s.get(Invoice, invoice_id)
        if inv is None:
            raise NotFound("No existe esa factura.")
        return to_info(s, inv)


def for_order(db: Database, reference: str) -> list[InvoiceInfo]:
    """The facturas of an order, newest first (one live at most)."""
    with db.session() as s:
        rows = s.scalars(select(Invoice).join(Order, Order.id == Invoice.order_id)
                         .where(Order.reference == reference)
                         .order_by(Invoice.id.desc())).all()
        return [to_info(s, inv) for inv in rows]


def list_invoices(db: Database, search: str = "", limit: int = 200) -> list[InvoiceInfo]:
    """Every factura issued, newest first; ``search`` matches UUID, RFC, name, folio,
    order reference or period."""
    with db.session() as s:
        q = select(Invoice).order_by(Invoice.id.desc())
        if search.strip():
            like = f"%{search.strip()}%"
            q = q.where(or_(Invoice.uuid.ilike(like), Invoice.receptor_rfc.ilike(like),
                            Invoice.receptor_nombre.ilike(like), Invoice.folio == search.strip(),
                            Invoice.period == search.strip(),
                            Invoice.order_id.in_(select(Order.id)
                                                 .where(Order.reference.ilike(like)))))
        return [to_info(s, inv) for inv in s.scalars(q.limit(limit))]


def files(db: Database, invoice_id: int) -> tuple[bytes, bytes | None]:
    """(XML, PDF) of a stamped factura; NotFound before it is stamped."""
    with db.session() as s:
        inv = s.get(Invoice, invoice_id)
        if inv is None or inv.uuid is None:
            raise NotFound("No existe esa factura.")
        return inv.xml.encode("utf-8"), inv.pdf


def may_see(db: Database, invoice_id: int, account_id: int) -> bool:
    """Whether the account is the factura's customer (the order's owner)."""
    with db.session() as s:
        inv = s.get(Invoice, invoice_id)
        if inv is None or inv.order_id is None:
            return False
        owner = s.scalar(select(Order.account_id).where(Order.id == inv.order_id))
        return owner == account_id


# -- the audit of a factura -------------------------------------------------------------------

def spaces_of(s: Session, order_ids: list[int]) -> list[tuple[int, str]]:
    """(id, name) of the spaces the orders bought (a factura's audit goes to each)."""
    names = sorted({n for n in s.scalars(select(OrderItem.space_name)
                                          .where(OrderItem.order_id.in_(order_ids)))})
    return [(sid, name) for sid, name in s.execute(
        select(Space.id, Space.name).where(Space.name.in_(names)))]


def audit_detail(inv: Invoice, uuid: str | None) -> str:
    """How an audit entry names a factura: serie-folio, UUID, receptor, total."""
    what = f"global {inv.period}" if inv.kind == "global" else f"RFC {inv.receptor_rfc}"
    return (f"factura {inv.serie}-{inv.folio} UUID {uuid} {what} total "
            f"{plans.format_mxn(plans.from_cents(inv.total_cents))}")
