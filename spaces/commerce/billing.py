"""The cart, orders and what a payment does.

Prices come only from :func:`spaces.core.plans.quote` and are frozen (in centavos)
into the order at checkout. :func:`process_event` is the single place where a
verified gateway event changes anything, and it is idempotent twice over: the
event is recorded under a unique (gateway, event id), and the order moves
``pending`` -> ``paid`` with a conditional UPDATE. Only that move provisions.
A declined or failed payment is recorded and changes nothing else.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from spaces.access import service
from spaces.cfdi import retention
from spaces.commerce import accounts, notices, rfc_claims
from spaces.commerce.payments import GatewayEvent, OrderToPay
from spaces.core import audit, plans
from spaces.core.db import Database, affected
from spaces.core.errors import AlreadyExists, Forbidden, InvalidName, NotFound, SpaceError
from spaces.core.mail import Mailer, MailError
from spaces.core.models import (
    Account,
    CartItem,
    Member,
    Order,
    OrderItem,
    PaymentEvent,
    Space,
    utcnow,
)
from spaces.core.settings import Settings
from spaces.files import layout

log = logging.getLogger(__name__)

NAMINGS = ("username", "rfc")


# -- cart ----------------------------------------------------------------------------

def target_space_name(account: accounts.AccountInfo, naming: str) -> str:
    """The space a purchase is for: named after the account's username or its RFC
    (only once an operator verified it: spaces.commerce.rfc_claims)."""
    if naming == "rfc":
        if not account.rfc:
            raise InvalidName("Su cuenta no tiene RFC: agréguelo en «Mi cuenta» o elija el "
                              "nombre de usuario.")
        name = service.normalize_space_name(account.rfc)
        rfc_claims.check_may_name(account.rfc, account.rfc_verified, name)
        return name
    if naming == "username":
        return account.username
    raise InvalidName("Elija si el espacio lleva su RFC o su nombre de usuario.")


@dataclass(frozen=True)
class CartLine:
    id: int
    space_name: str
    action: str  # "create" | "change" | "renew"
    quote: plans.Quote


@dataclass(frozen=True)
class Totals:
    price: Decimal
    #: The periods' discounts (credits for unused days apart, in ``credit``).
    discount: Decimal
    subtotal: Decimal
    tax: Decimal
    total: Decimal
    credit: Decimal = Decimal("0.00")

    @classmethod
    def of(cls, quotes: list[plans.Quote]) -> Totals:
        z = Decimal("0.00")
        return cls(sum((q.price for q in quotes), z), sum((q.discount for q in quotes), z),
                   sum((q.subtotal for q in quotes), z), sum((q.tax for q in quotes), z),
                   sum((q.total for q in quotes), z), sum((q.credit for q in quotes), z))


def _paid_period(s, space: Space) -> str:  # type: ignore[no-untyped-def]
    """The period the space's current plan was last paid for (monthly if none)."""
    period = s.scalar(select(OrderItem.period).join(Order, Order.id == OrderItem.order_id)
                      .where(OrderItem.space_name == space.name)
                      .where(OrderItem.tier == space.tier)
                      .where(Order.status == "paid")
                      .order_by(Order.paid_at.desc(), OrderItem.id.desc()).limit(1))
    return period if period in plans.PERIODS else "monthly"


def _action(settings: Settings, db: Database, account_id: int, space_name: str, tier: str,
            period: str, today: date | None = None) -> tuple[str, plans.Quote]:
    """What buying ``tier`` for ``period`` for ``space_name`` would do for this
    account, and its price: "create", "renew" (same plan: the period is added to
    the paid one) or "change" (another plan: it starts on the day it is paid and
    the unused days of the current plan are credited, plans.proration_credit).
    AlreadyExists if another account (or the command line) owns that name."""
    today = today or date.today()
    with db.session() as s:
        space = s.scalar(select(Space).where(Space.name == space_name))
        if space is None:
            service.check_new_space_name(space_name)
            return "create", plans.quote(settings, tier, period)
        if space.account_id != account_id:
            raise AlreadyExists(f"El nombre «{space_name}» ya lo usa otro espacio. Elija el otro "
                                "nombre (RFC o usuario) o escríbanos.")
        if space.tier == plans.get_tier(settings, tier).name:
            return "renew", plans.quote(settings, tier, period)
        try:
            credit = plans.proration_credit(settings, space.tier, _paid_period(s, space),
                                            space.paid_until, today)
        except NotFound:  # the current plan left the catalogue: nothing to price it by
            credit = None
    return "change", plans.quote(settings, tier, period, credit)


def preview(settings: Settings, db: Database, account_id: int, tier: str, period: str,
            naming: str) -> CartLine:
    """What "Agregar al carrito" would add right now (id 0): the space's name, the
    action and the price with any credit. The same errors as add_to_cart."""
    account = accounts.get_account(db, account_id)
    name = target_space_name(account, naming)
    action, q = _action(settings, db, account_id, name, tier, period)
    return CartLine(0, name, action, q)


def add_to_cart(settings: Settings, db: Database, account_id: int, tier: str, period: str,
                naming: str) -> CartLine:
    account = accounts.get_account(db, account_id)
    if not account.confirmed:
        raise Forbidden("Confirme su correo antes de contratar.")
    name = target_space_name(account, naming)
    rfc_claims.check_may_name(account.rfc, account.rfc_verified, name)
    action, q = _action(settings, db, account_id, name, tier, period)
    with db.session() as s:
        if s.scalar(select(CartItem.id).where(CartItem.account_id == account_id)
                    .where(CartItem.space_name == name)) is not None:
            raise AlreadyExists(f"Ya hay en su carrito un plan para el espacio «{name}»; "
                                "cámbielo ahí.")
        item = CartItem(account_id=account_id, tier=q.tier, period=period, space_name=name)
        s.add(item)
        s.flush()
        return CartLine(item.id, name, action, q)


def cart(settings: Settings, db: Database, account_id: int) -> list[CartLine]:
    with db.session() as s:
        items = list(s.scalars(select(CartItem).where(CartItem.account_id == account_id)
                               .order_by(CartItem.id)))
    account = accounts.get_account(db, account_id)
    lines = []
    for it in items:
        try:
            # A name that was the account's verified RFC may not be any more.
            rfc_claims.check_may_name(account.rfc, account.rfc_verified, it.space_name)
            action, q = _action(settings, db, account_id, it.space_name, it.tier, it.period)
            lines.append(CartLine(it.id, it.space_name, action, q))
        except (NotFound, AlreadyExists, Forbidden):
            # The tier left the catalogue, the name was taken meanwhile or is an RFC
            # the account no longer holds.
            remove_cart_item(db, account_id, it.id)
    return lines


def change_cart_item(settings: Settings, db: Database, account_id: int, item_id: int,
                     tier: str, period: str) -> None:
    with db.session() as s:
        name = s.scalar(select(CartItem.space_name).where(CartItem.id == item_id)
                        .where(CartItem.account_id == account_id))
    if name is None:
        raise NotFound("Ese artículo ya no está en su carrito.")
    _, q = _action(settings, db, account_id, name, tier, period)  # refuses what cannot be
    with db.session() as s:
        n = affected(s.execute(update(CartItem).where(CartItem.id == item_id)
                               .where(CartItem.account_id == account_id)
                               .values(tier=q.tier, period=period)))
    if n != 1:
        raise NotFound("Ese artículo ya no está en su carrito.")


def remove_cart_item(db: Database, account_id: int, item_id: int) -> None:
    with db.session() as s:
        s.query(CartItem).filter(CartItem.id == item_id,
                                 CartItem.account_id == account_id).delete()


# -- orders --------------------------------------------------------------------------

@dataclass(frozen=True)
class OrderLine:
    tier: str
    period: str
    months: int
    space_name: str
    description: str
    price: Decimal
    discount_percent: Decimal
    discount: Decimal
    subtotal: Decimal
    tax: Decimal
    total: Decimal
    outcome: str | None
    #: A plan change: the unused days of ``credit_tier`` credited (``discount``
    #: is the period's discount alone).
    credit: Decimal = Decimal("0.00")
    credit_days: int = 0
    credit_tier: str | None = None
    extra_days: int = 0


@dataclass(frozen=True)
class OrderInfo:
    id: int
    reference: str
    account_id: int
    account_username: str
    account_email: str
    account_rfc: str | None
    status: str
    currency: str
    totals: Totals
    contract_version: str
    contract_accepted_at: datetime
    gateway: str
    created_at: datetime
    paid_at: datetime | None
    lines: tuple[OrderLine, ...]
    #: Facturación (spaces.commerce.invoicing): asked at checkout; how it was paid; which
    #: factura covers it ("none", "own", "global").
    invoice_requested: bool = False
    payment_method: str | None = None
    invoice_state: str = "none"

    @property
    def total_cents(self) -> int:
        return plans.to_cents(self.totals.total)

    def to_pay(self) -> OrderToPay:
        desc = "; ".join(f"{ln.description} ({ln.space_name})" for ln in self.lines)
        return OrderToPay(self.reference, self.total_cents, self.currency, desc,
                          self.account_email)


def _order_info(s, o: Order) -> OrderInfo:  # type: ignore[no-untyped-def]
    a = s.get(Account, o.account_id)
    items = s.scalars(select(OrderItem).where(OrderItem.order_id == o.id).order_by(OrderItem.id))
    c = plans.from_cents
    lines = tuple(OrderLine(i.tier, i.period, i.months, i.space_name, i.description,
                            c(i.price_cents), Decimal(i.discount_percent),
                            c(i.discount_cents - i.credit_cents), c(i.subtotal_cents),
                            c(i.tax_cents), c(i.total_cents), i.outcome, c(i.credit_cents),
                            i.credit_days, i.credit_tier, i.extra_days)
                  for i in items)
    price = sum((ln.price for ln in lines), Decimal("0.00"))
    credit = sum((ln.credit for ln in lines), Decimal("0.00"))
    totals = Totals(price, c(o.discount_cents) - credit, c(o.subtotal_cents), c(o.tax_cents),
                    c(o.total_cents), credit)
    return OrderInfo(o.id, o.reference, o.account_id, a.username if a else "?",
                     a.email if a else "?", a.rfc if a else None, o.status, o.currency, totals,
                     o.contract_version, o.contract_accepted_at, o.gateway, o.created_at,
                     o.paid_at, lines, invoice_requested=o.invoice_requested,
                     payment_method=o.payment_method, invoice_state=o.invoice_state)


def checkout(settings: Settings, db: Database, account_id: int,
             accepted_contract_version: str, *, invoice: bool = False) -> OrderInfo:
    """Turn the cart into a pending order, its prices frozen. The customer must
    have accepted the current contract version (stored with the time).
    ``invoice``: the customer wants its factura (spaces.commerce.invoicing), issued to its
    fiscal data as soon as the payment arrives."""
    if accepted_contract_version != settings.billing.contract_version:
        raise Forbidden("Debe aceptar la versión vigente del contrato de servicio.")
    lines = cart(settings, db, account_id)
    if not lines:
        raise InvalidName("Su carrito está vacío.")
    totals = Totals.of([ln.quote for ln in lines])
    cents = plans.to_cents
    with db.session() as s:
        order = Order(
            reference=f"RG-{secrets.token_hex(5).upper()}", account_id=account_id,
            status="pending", currency=settings.billing.currency,
            subtotal_cents=cents(totals.subtotal),
            # The CFDI's Descuento: the periods' discounts and the credits for unused days.
            discount_cents=cents(totals.discount) + cents(totals.credit),
            tax_cents=cents(totals.tax), total_cents=cents(totals.total),
            contract_version=accepted_contract_version, contract_accepted_at=utcnow(),
            gateway=settings.billing.gateway, invoice_requested=invoice)
        s.add(order)
        s.flush()
        for ln in lines:
            q = ln.quote
            s.add(OrderItem(
                order_id=order.id, tier=q.tier, period=q.period, months=q.months,
                space_name=ln.space_name, description=q.description,
                price_cents=cents(q.price), discount_percent=str(q.discount_percent),
                discount_cents=cents(q.discount) + cents(q.credit),
                subtotal_cents=cents(q.subtotal), tax_cents=cents(q.tax),
                total_cents=cents(q.total), credit_cents=cents(q.credit),
                credit_days=q.credited.days if q.credited else 0,
                credit_tier=q.credited.tier if q.credited else None,
                extra_days=q.extra_days))
        s.query(CartItem).filter(CartItem.account_id == account_id).delete()
        s.flush()
        info = _order_info(s, order)
    log.info("order created: ref=%s account=%s total=%s", info.reference, account_id,
             info.totals.total)
    return info


def get_order(db: Database, reference: str, account_id: int | None = None) -> OrderInfo:
    """The order ``reference`` (of ``account_id`` when given); NotFound otherwise."""
    with db.session() as s:
        q = select(Order).where(Order.reference == reference)
        if account_id is not None:
            q = q.where(Order.account_id == account_id)
        o = s.scalar(q)
        if o is None:
            raise NotFound("No existe ese pedido.")
        return _order_info(s, o)


def list_orders(db: Database, *, account_id: int | None = None, space_name: str | None = None,
                search: str = "", limit: int = 500) -> list[OrderInfo]:
    with db.session() as s:
        q = select(Order).order_by(Order.created_at.desc(), Order.id.desc())
        if account_id is not None:
            q = q.where(Order.account_id == account_id)
        if space_name is not None:
            q = q.where(Order.id.in_(select(OrderItem.order_id)
                                     .where(OrderItem.space_name == space_name)))
        if search:
            like = f"%{search.strip()}%"
            q = q.where(Order.reference.ilike(like) | Order.account_id.in_(
                select(Account.id).where(Account.username.ilike(like)
                                         | Account.email.ilike(like))) | Order.id.in_(
                select(OrderItem.order_id).where(OrderItem.space_name.ilike(like))))
        return [_order_info(s, o) for o in s.scalars(q.limit(limit))]


@dataclass(frozen=True)
class EventInfo:
    gateway: str
    event_id: str
    order_reference: str | None
    outcome: str
    amount: Decimal
    currency: str
    detail: str
    received_at: datetime


def list_events(db: Database, search: str = "", limit: int = 500) -> list[EventInfo]:
    with db.session() as s:
        q = (select(PaymentEvent, Order.reference)
             .outerjoin(Order, Order.id == PaymentEvent.order_id)
             .order_by(PaymentEvent.received_at.desc(), PaymentEvent.id.desc()))
        if search:
            like = f"%{search.strip()}%"
            q = q.where(PaymentEvent.event_id.ilike(like) | Order.reference.ilike(like)
                        | PaymentEvent.outcome.ilike(like))
        return [EventInfo(e.gateway, e.event_id, ref, e.outcome,
                          plans.from_cents(e.amount_cents), e.currency, e.detail,
                          e.received_at) for e, ref in s.execute(q.limit(limit))]


# -- payments -----------------------------------------------------------------------

@dataclass(frozen=True)
class EventResult:
    """``status``: ``provisioned`` (this event paid the order), ``duplicate``
    (event seen before), ``already_paid``, ``declined``/``failed`` (nothing
    changed), ``rejected`` (unknown order, or amount/currency mismatch)."""

    status: str
    order_reference: str


@dataclass(frozen=True)
class _Provisioned:
    space: service.SpaceInfo
    created: bool
    member_id: int | None
    username: str
    email: str


def process_event(settings: Settings, db: Database, mailer: Mailer, links: notices.Links,
                  event: GatewayEvent, today: date | None = None) -> EventResult:
    """Act on a verified gateway event, exactly once (see the module docstring)."""
    today = today or date.today()
    provisioned: list[_Provisioned] = []
    wants_invoice = False
    ref = event.order_reference
    try:
        with db.session() as s:
            order = s.scalar(select(Order).where(Order.reference == ref))
            s.add(PaymentEvent(
                gateway=event.gateway, event_id=event.event_id,
                order_id=order.id if order else None, outcome=event.outcome,
                amount_cents=event.amount_cents, currency=event.currency[:3],
                detail=event.detail[:500]))
            s.flush()
            if order is None or order.gateway != event.gateway:
                log.warning("payment event for unknown order: gateway=%s event=%s order=%s",
                            event.gateway, event.event_id, ref)
                return EventResult("rejected", ref)
            if event.outcome != "paid":
                log.info("payment %s: order=%s event=%s (%s); nothing changed", event.outcome,
                         ref, event.event_id, event.detail)
                return EventResult(event.outcome, ref)
            if event.amount_cents != order.total_cents or event.currency != order.currency:
                log.error("payment amount mismatch: order=%s expected=%d %s got=%d %s",
                          ref, order.total_cents, order.currency, event.amount_cents,
                          event.currency)
                return EventResult("rejected", ref)
            won = affected(s.execute(update(Order).where(Order.id == order.id)
                                     .where(Order.status == "pending")
                                     .values(status="paid", paid_at=utcnow(),
                                             payment_method=event.method))) == 1
            if not won:
                log.info("payment for an order already paid: order=%s event=%s", ref,
                         event.event_id)
                return EventResult("already_paid", ref)
            account = s.get(Account, order.account_id)
            assert account is not None
            wants_invoice = order.invoice_requested
            for item in s.scalars(select(OrderItem).where(OrderItem.order_id == order.id)
                                  .order_by(OrderItem.id)):
                p = _provision_item(s, settings, account, item, today)
                if p is not None:
                    provisioned.append(p)
    except IntegrityError:
        log.info("duplicate payment event ignored: gateway=%s event=%s", event.gateway,
                 event.event_id)
        return EventResult("duplicate", ref)
    for p in provisioned:
        layout.ensure_space_dirs(settings, p.space.name)
        if not p.created:  # a plan change: its reserve may be smaller
            service.fit_reserve(settings, db, p.space.id, p.space.name, actor=audit.SYSTEM)
        _mail_access(settings, db, mailer, links, p)
    log.info("order paid and provisioned: order=%s spaces=%s", ref,
             ",".join(p.space.name for p in provisioned))
    if wants_invoice:
        _issue_invoice(settings, db, mailer, ref)
    return EventResult("provisioned", ref)


def _issue_invoice(settings: Settings, db: Database, mailer: Mailer, ref: str) -> None:
    """The factura asked for at checkout. The payment stands whatever happens here:
    a refusal is logged and the order page offers to ask again."""
    from spaces.commerce import invoicing

    try:
        invoicing.issue_for_order(settings, db, mailer, ref, actor=audit.SYSTEM)
    except SpaceError as exc:
        log.warning("factura requested at checkout not issued: order=%s: %s", ref, exc)


def _provision_item(s, settings: Settings, account: Account, item: OrderItem,  # type: ignore[no-untyped-def]
                    today: date) -> _Provisioned | None:
    """Create the space or change its tier, and extend paid-until by the period.
    Never deletes anything: a downgrade below current usage just refuses writes
    (quota) until usage fits. A name taken by someone else since checkout is
    recorded on the item for the operator (the payment stands)."""
    tier = plans.get_tier(settings, item.tier)
    space = s.scalar(select(Space).where(Space.name == item.space_name))
    if space is None:
        try:
            rfc_claims.check_may_name(account.rfc, account.rfc_verified_at is not None,
                                      item.space_name)
        except Forbidden:
            item.outcome = "error: el RFC del nombre no está verificado para esta cuenta"
            log.error("cannot provision: space=%s is an RFC account %s does not hold",
                      item.space_name, account.id)
            return None
        space, member = accounts.create_owned_space(s, settings, account, item.space_name,
                                                    tier.name)
        space.paid_until = plans.extend_paid_until(None, item.months, today)
        item.outcome = "created"
        s.flush()
        log.info("space provisioned: space=%s tier=%s until=%s", space.name, tier.name,
                 space.paid_until)
        return _Provisioned(service.SpaceInfo.of(space), True, member.id, account.username,
                            account.email)
    if space.account_id != account.id:
        item.outcome = "error: el nombre ya es de otro espacio"
        log.error("cannot provision: space=%s belongs to account %s, order item %s paid by %s",
                  space.name, space.account_id, item.id, account.id)
        return None
    old_tier = space.tier
    service.apply_tier(space, tier)
    if item.credit_days:
        # The unused days of the old plan were credited: the new one starts today
        # (with the days a credit larger than its price bought).
        space.paid_until = plans.add_months(today, item.months) + timedelta(
            days=item.extra_days)
    else:
        space.paid_until = plans.extend_paid_until(space.paid_until, item.months, today)
    who = audit.Actor(f"account:{account.username}", None, "portal")
    if space.status == "readonly" and space.status_reason == "expired":
        space.status, space.status_reason = "active", None
        audit.record(s, space.id, audit.Action.REACTIVATED, actor=who, space_name=space.name,
                     detail="readonly -> active (renovación pagada)")
    if old_tier != tier.name:
        audit.record(s, space.id, audit.Action.TIER_CHANGED, actor=who, space_name=space.name,
                     detail=f"{old_tier} -> {tier.name} (pago)")
        # The CFDI already kept get the new plan's period (never a shorter one).
        retention.extend_in_session(s, settings, space.id, tier.name)
    item.outcome = "renewed" if old_tier == tier.name else f"changed from {old_tier}"
    s.flush()
    log.info("space tier changed by payment: space=%s %s -> %s until=%s", space.name, old_tier,
             tier.name, space.paid_until)
    member = s.scalar(select(Member).where(Member.space_id == space.id)
                      .where(Member.username == account.username))
    return _Provisioned(service.SpaceInfo.of(space), False, member.id if member else None,
                        account.username, account.email)


def _mail_access(settings: Settings, db: Database, mailer: Mailer, links: notices.Links,
                 p: _Provisioned) -> None:
    try:
        if p.member_id is not None:
            accounts.send_access_data(settings, db, mailer, links, p.space, p.member_id,
                                      p.username, p.email, changed=not p.created)
        else:
            mailer.send(notices.plan_changed(
                p.email, space=p.space.name, tier=p.space.tier,
                quota_bytes=p.space.quota_bytes, drive_url=links.drive(p.space.name),
                paid_until=p.space.paid_until))
    except MailError:
        pass  # logged by the mailer; the space is provisioned either way
