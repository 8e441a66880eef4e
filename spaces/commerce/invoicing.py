"""Facturas: a CFDI 4.0 de Ingreso for every payment.

What is issued
==============

- **To the customer, for one paid order** (:func:`issue_for_order`): when it
  asked at checkout (issued as the payment arrives), or later from the order
  page while the calendar month of the payment lasts (local time of the
  lugar de expedición). Receptor: the account's fiscal data
  (:mod:`spaces.commerce.fiscal`). One concepto per order line: SAT's key for a storage
  service (``[invoicing] product_code``, 81112006) and unit E48, cantidad 1,
  valor unitario = the line's price, descuento = its discount, IVA trasladado at
  ``[billing] iva_rate`` with the line's own tax: every amount is the receipt's
  (Decimal, rounded half up when the order was made), and the total is checked
  against the order's before anything is signed. Método de pago PUE (paid in
  one exhibition, before the factura); forma de pago from how the gateway says
  it was paid (:data:`spaces.sat.catalogs.FORMA_PAGO`).
- **To the público en general, once a month** (:func:`issue_global`): every
  order paid in a month and not invoiced to its customer, after the month
  ended (``resguardo invoice global``, and ``resguardo lifecycle run`` does it
  for the month before). RFC XAXX010101000, "PUBLICO EN GENERAL", régimen 616,
  uso S01, domicilio fiscal = the lugar de expedición, InformacionGlobal
  periodicidad 04 (mensual), and per sale (RMF 2.7.1.21 and SAT's guide to
  Anexo 20) ClaveProdServ 01010101, unit ACT, "Venta", the order's reference
  as NoIdentificacion. The customer's window closes when the month ends, so a
  sale is never in both (and a conditional UPDATE of ``Order.invoice_state``
  decides it if the two meet at midnight).

How
===

:func:`spaces.commerce.pac.load_csd` gives the operator's CSD; the CFDI is built,
sealed and checked against the receipt and SAT's schemas by
:mod:`spaces.commerce.invoice_cfdi` (fail closed: a CFDI SAT would refuse never
leaves); the signed XML is stored *before* the PAC is called, so a PAC that
does not answer is asked again with the same CFDI (PACs answer a repeat with
the stamp they made); the stamped XML is checked again and stored with its PDF
(:mod:`spaces.commerce.invoice_pdf`), and both are e-mailed. Cancellation (SAT's motivos
01–04) goes through the same PAC (:func:`spaces.commerce.invoice_cancel.cancel`,
:func:`substitute`). Every issue and cancellation is in the audit log of the
order's spaces. Reading the facturas stored is :mod:`spaces.commerce.invoice_records`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from spaces import sat
from spaces.commerce import fiscal, notices, rfc_claims
from spaces.commerce.invoice_cancel import cancel, refresh_cancellations
from spaces.commerce.invoice_cfdi import (
    Line,
    Receptor,
    build,
    expected_amounts,
    forma_pago,
    order_lines,
)
from spaces.commerce.invoice_records import (
    InvoiceInfo,
    audit_detail,
    files,
    spaces_of,
    to_info,
)
from spaces.commerce.pac import (
    InvoicingUnavailable,
    Pac,
    PacRefused,
    PacUnavailable,
    load_csd,
    local_now,
    make_pac,
)
from spaces.core import audit, plans
from spaces.core.db import Database, affected
from spaces.core.errors import AlreadyExists, Forbidden, InvalidName, NotFound, SpaceError
from spaces.core.mail import Attachment, Mailer, MailError
from spaces.core.models import Account, Invoice, Order, utcnow
from spaces.core.settings import Settings
from spaces.sat import catalogs

log = logging.getLogger(__name__)


# -- the window a customer has ----------------------------------------------------------------

def payment_month(settings: Settings, paid_at: datetime) -> tuple[int, int]:
    """(year, month) of a payment (``paid_at`` naive UTC), in the lugar de expedición's time."""
    local = local_now(settings.invoicing.issuer_postal_code, paid_at.replace(tzinfo=UTC))
    return local.year, local.month


def may_request(settings: Settings, paid_at: datetime | None,
                now: datetime | None = None) -> bool:
    """A customer may ask for the factura of a payment until its calendar month ends."""
    if paid_at is None:
        return False
    today = local_now(settings.invoicing.issuer_postal_code, now)
    return payment_month(settings, paid_at) == (today.year, today.month)


# -- stamping (shared) ----------------------------------------------------------------------

def _stamp_and_store(settings: Settings, db: Database, pac: Pac, invoice_id: int,
                     signed: bytes, actor: audit.Actor) -> InvoiceInfo:
    """Send the stored signed CFDI to the PAC and store what comes back. PacRefused:
    nothing was stamped, the factura's row is removed (and its claim on the orders
    released). PacUnavailable: left as it is, to be sent again."""
    from spaces.commerce.invoice_pdf import render

    try:
        stamped = pac.stamp(signed)
    except PacRefused:
        _forget(db, invoice_id)
        raise
    except PacUnavailable:
        log.warning("pac unavailable: invoice %s stays signed, to be stamped again", invoice_id)
        raise
    try:
        sat.validate(stamped.xml)
        tfd = sat.timbre(stamped.xml)
        if tfd is None or tfd.get("SelloCFD") != sat.parse(signed).getroot().get("Sello"):
            raise sat.InvalidCfdi("el timbre no corresponde al comprobante firmado")
    except sat.InvalidCfdi as exc:
        log.error("pac returned an invalid cfdi for invoice %s: %s", invoice_id, exc)
        raise InvoicingUnavailable("El PAC devolvió un comprobante que no cumple el esquema "
                                   "del SAT; la factura queda pendiente.") from None
    pdf = render(stamped.xml, sandbox=pac.sandbox)
    with db.session() as s:
        done = affected(s.execute(
            update(Invoice).where(Invoice.id == invoice_id).where(Invoice.status == "stamping")
            .values(status="valid", uuid=stamped.uuid, xml=stamped.xml.decode("utf-8"),
                    pdf=pdf, stamped_at=utcnow())))
        inv = s.get(Invoice, invoice_id)
        assert inv is not None
        if done == 1:
            order_ids = ([inv.order_id] if inv.order_id else
                         list(s.scalars(select(Order.id)
                                        .where(Order.global_invoice_id == inv.id))))
            for sid, name in spaces_of(s, order_ids):
                audit.record(s, sid, audit.Action.INVOICE_ISSUED, actor=actor, space_name=name,
                             detail=audit_detail(inv, stamped.uuid))
        info = to_info(s, inv)
    if done == 1:
        log.info("invoice stamped: %s uuid=%s receptor=%s total=%s pac=%s%s", info.name,
                 info.uuid, info.receptor_rfc, info.total, info.pac,
                 " (sandbox: not valid before SAT)" if info.sandbox else "")
    return info


def _forget(db: Database, invoice_id: int) -> None:
    """Remove a factura the PAC refused (it never existed for SAT) and release
    the orders it claimed."""
    with db.session() as s:
        inv = s.get(Invoice, invoice_id)
        if inv is None or inv.status != "stamping":
            return
        if inv.kind == "global":
            s.execute(update(Order).where(Order.global_invoice_id == invoice_id)
                      .values(invoice_state="none", global_invoice_id=None))
        elif inv.order_id is not None and inv.replaces_uuid is None:
            s.execute(update(Order).where(Order.id == inv.order_id)
                      .where(Order.invoice_state == "own").values(invoice_state="none"))
        s.execute(delete(Invoice).where(Invoice.id == invoice_id)
                  .where(Invoice.status == "stamping"))


def _sign_stored(settings: Settings, db: Database, invoice_id: int,
                 make: Any) -> bytes:
    """The signed CFDI of a factura in ``stamping``: the one stored, or ``make()``'s,
    stored only if none was (two callers at once stamp the same one)."""
    with db.session() as s:
        stored = s.scalar(select(Invoice.xml).where(Invoice.id == invoice_id))
    if stored:
        return stored.encode("utf-8")
    try:
        signed: bytes = make()
    except SpaceError:
        _forget(db, invoice_id)
        raise
    with db.session() as s:
        s.execute(update(Invoice).where(Invoice.id == invoice_id).where(Invoice.xml == "")
                  .values(xml=signed.decode("utf-8")))
        stored = s.scalar(select(Invoice.xml).where(Invoice.id == invoice_id))
    return (stored or "").encode("utf-8")


# -- a factura for an order -------------------------------------------------------------------

def issue_for_order(settings: Settings, db: Database, mailer: Mailer, reference: str, *,
                    actor: audit.Actor, account_id: int | None = None,
                    operator: bool = False, pac: Pac | None = None,
                    now: datetime | None = None, replaces: int | None = None) -> InvoiceInfo:
    """Issue (or finish issuing) the factura of a paid order to its customer, and
    e-mail it. ``account_id``: the customer asking (NotFound for another's order);
    ``operator``: no month window. Idempotent: an order that has its factura gets
    it back. Forbidden when the month is over or the sale is in a global factura;
    InvalidName for incomplete or refused fiscal data; AlreadyExists while
    another request is issuing it; PacRefused (nothing issued, may be retried
    after fixing the data) and InvoicingUnavailable (try later)."""
    pac = pac or make_pac(settings, now)
    with db.session() as s:
        q = select(Order).where(Order.reference == reference)
        if account_id is not None:
            q = q.where(Order.account_id == account_id)
        order = s.scalar(q)
        if order is None or order.status != "paid":
            raise NotFound("No existe ese pedido pagado.")
        live = s.scalar(select(Invoice).where(Invoice.order_id == order.id)
                        .where(Invoice.status.in_(("valid", "cancelling", "cancel_pending",
                                                   "stamping"))))
        if live is not None and live.status != "stamping":
            return to_info(s, live)
        order_id, paid_at, owner = order.id, order.paid_at, order.account_id
        state = order.invoice_state
    if live is None:
        if state == "global":
            raise Forbidden("Este pago ya está en la factura global del mes (público en "
                            "general): su mes terminó.")
        if not operator and replaces is None and not may_request(settings, paid_at, now):
            raise Forbidden("La factura se pide dentro del mes en que se pagó; ese mes ya "
                            "terminó y el pago queda en la factura global del mes.")
        invoice_id = _claim_for_order(settings, db, order_id, owner, pac, replaces)
    else:
        invoice_id = live.id
    signed = _sign_stored(settings, db, invoice_id,
                          lambda: _build_for_order(settings, db, invoice_id, now))
    info = _stamp_and_store(settings, db, pac, invoice_id, signed, actor)
    _mail(settings, db, mailer, info)
    return info


def _claim_for_order(settings: Settings, db: Database, order_id: int, owner: int, pac: Pac,
                     replaces: int | None) -> int:
    """The row of a new factura for the order, in ``stamping``, its receptor the
    owner's fiscal data as now. Claims the order (``invoice_state`` "own")."""
    data = fiscal.get(db, owner)
    if data is None:
        raise InvalidName("Complete sus datos fiscales (RFC, razón social, régimen, código "
                          "postal y uso) en «Mi cuenta» para pedir su factura.")
    data = fiscal.check(settings, data.rfc, data.razon_social, data.regimen_fiscal,
                        data.codigo_postal, data.uso_cfdi)
    try:
        with db.session() as s:
            if rfc_claims.verified_elsewhere(s, data.rfc, owner):
                raise Forbidden(f"El RFC {data.rfc} está verificado en otra cuenta: no se "
                                "puede facturar a ese RFC desde esta cuenta.")
            order = s.get(Order, order_id)
            assert order is not None
            if replaces is None:
                won = affected(s.execute(
                    update(Order).where(Order.id == order_id)
                    .where(Order.invoice_state.in_(("none", "own")))
                    .values(invoice_state="own"))) == 1
                if not won:
                    raise Forbidden("Este pago ya está en la factura global del mes (público "
                                    "en general).")
            old = s.get(Invoice, replaces) if replaces else None
            inv = Invoice(kind="order", order_id=order_id, account_id=owner, status="stamping",
                          serie=settings.invoicing.series, folio="", pac=pac.name,
                          sandbox=pac.sandbox, receptor_rfc=data.rfc,
                          receptor_nombre=data.razon_social, uso_cfdi=data.uso_cfdi,
                          forma_pago=forma_pago(order), subtotal_cents=order.subtotal_cents,
                          discount_cents=order.discount_cents, tax_cents=order.tax_cents,
                          total_cents=order.total_cents, fecha="", xml="",
                          replaces_uuid=old.uuid if old else None)
            s.add(inv)
            s.flush()
            inv.folio = str(inv.id)
            return inv.id
    except IntegrityError:
        raise AlreadyExists("Su factura ya se está emitiendo: recargue la página en unos "
                            "segundos.") from None


def _build_for_order(settings: Settings, db: Database, invoice_id: int,
                     now: datetime | None) -> bytes:
    csd = load_csd(settings)
    with db.session() as s:
        inv = s.get(Invoice, invoice_id)
        assert inv is not None and inv.order_id is not None
        order = s.get(Order, inv.order_id)
        assert order is not None
        a = s.get(Account, inv.account_id) if inv.account_id else None
        if a is None or not (a.regimen_fiscal and a.codigo_postal):
            raise InvalidName("Complete sus datos fiscales en «Mi cuenta».")
        receptor = Receptor(inv.receptor_rfc, inv.receptor_nombre, a.codigo_postal,
                             a.regimen_fiscal, inv.uso_cfdi)
        lines = order_lines(s, order)
        expected = (sum(plans.to_cents(ln.price) for ln in lines), order.discount_cents,
                    order.tax_cents, order.total_cents)
        fecha = local_now(settings.invoicing.issuer_postal_code, now)
        signed = build(settings, csd, folio=inv.folio, fecha=fecha, receptor=receptor,
                        lines=lines, forma_pago=inv.forma_pago, expected=expected,
                        replaces=inv.replaces_uuid)
        inv.fecha = fecha.isoformat()
    return signed


def _mail(settings: Settings, db: Database, mailer: Mailer, info: InvoiceInfo) -> None:
    """E-mail a stamped factura (XML and PDF) to its customer, once."""
    if info.kind != "order" or info.uuid is None:
        return
    with db.session() as s:
        won = affected(s.execute(update(Invoice).where(Invoice.id == info.id)
                                 .where(Invoice.mailed_at.is_(None))
                                 .values(mailed_at=utcnow()))) == 1
        email = s.scalar(select(Account.email).where(Account.id == info.account_id))
    if not won or not email:
        return
    xml, pdf = files(db, info.id)
    attachments = [Attachment(f"{info.name}-{info.uuid}.xml", "application/xml", xml)]
    if pdf:
        attachments.append(Attachment(f"{info.name}-{info.uuid}.pdf", "application/pdf", pdf))
    try:
        mailer.send(notices.invoice_issued(
            email, reference=info.order_reference or "", name=info.name, uuid=info.uuid,
            rfc=info.receptor_rfc, total=plans.format_mxn(info.total), sandbox=info.sandbox,
            attachments=tuple(attachments)))
    except MailError:
        with db.session() as s:  # sent again by the next request or the lifecycle run
            s.execute(update(Invoice).where(Invoice.id == info.id).values(mailed_at=None))


# -- the month's global factura -------------------------------------------------------------

def issue_global(settings: Settings, db: Database, year: int, month: int, *,
                 actor: audit.Actor = audit.SYSTEM, pac: Pac | None = None,
                 now: datetime | None = None) -> InvoiceInfo | None:
    """The global factura (público en general) of ``year``-``month``: every order
    paid that month and not invoiced to its customer. Only once the month is over
    (Forbidden before); None when there is nothing to invoice. Idempotent: the
    month's live factura is returned (one signed but not stamped is sent again)."""
    pac = pac or make_pac(settings, now)
    today = local_now(settings.invoicing.issuer_postal_code, now)
    if (year, month) >= (today.year, today.month):
        raise Forbidden("La factura global de un mes se emite cuando el mes terminó: hasta "
                        "entonces sus clientes pueden pedir la suya.")
    period = f"{year:04d}-{month:02d}"
    with db.session() as s:
        live = s.scalar(select(Invoice).where(Invoice.period == period)
                        .where(Invoice.status.in_(("valid", "stamping", "cancelling",
                                                   "cancel_pending"))))
        if live is not None and live.status != "stamping":
            return to_info(s, live)
        invoice_id = live.id if live is not None else None
    if invoice_id is None:
        invoice_id = _claim_global(settings, db, period, year, month, pac)
        if invoice_id is None:
            return None
    signed = _sign_stored(settings, db, invoice_id,
                          lambda: _build_global(settings, db, invoice_id, year, month, now))
    return _stamp_and_store(settings, db, pac, invoice_id, signed, actor)


def _paid_in(settings: Settings, orders: list[Order], year: int, month: int) -> list[int]:
    return [o.id for o in orders
            if o.paid_at is not None and payment_month(settings, o.paid_at) == (year, month)]


def _claim_global(settings: Settings, db: Database, period: str, year: int, month: int,
                  pac: Pac) -> int | None:
    from datetime import timedelta

    # Candidates by UTC time, a day wider than the month on each side; the exact
    # month is decided in the lugar de expedición's time.
    start = datetime(year, month, 1) - timedelta(days=1)
    end = datetime(year + month // 12, month % 12 + 1, 1) + timedelta(days=1)
    i = settings.invoicing
    try:
        with db.session() as s:
            inv = Invoice(kind="global", period=period, status="stamping", serie=i.series,
                          folio="", pac=pac.name, sandbox=pac.sandbox,
                          receptor_rfc=catalogs.PUBLICO_EN_GENERAL_RFC,
                          receptor_nombre=catalogs.PUBLICO_EN_GENERAL_NOMBRE, uso_cfdi="S01",
                          forma_pago="04", subtotal_cents=0, discount_cents=0, tax_cents=0,
                          total_cents=0, fecha="", xml="")
            s.add(inv)
            s.flush()
            inv.folio = str(inv.id)
            candidates = list(s.scalars(select(Order).where(Order.status == "paid")
                                        .where(Order.invoice_state == "none")
                                        .where(Order.paid_at >= start)
                                        .where(Order.paid_at < end)))
            ids = _paid_in(settings, candidates, year, month)
            if ids:
                s.execute(update(Order).where(Order.id.in_(ids))
                          .where(Order.invoice_state == "none")
                          .values(invoice_state="global", global_invoice_id=inv.id))
            claimed = list(s.scalars(select(Order).where(Order.global_invoice_id == inv.id)))
            if not claimed:
                s.rollback()
                log.info("global invoice %s: no sale left to invoice", period)
                return None
            inv.subtotal_cents = sum(o.subtotal_cents for o in claimed)
            inv.discount_cents = sum(o.discount_cents for o in claimed)
            inv.tax_cents = sum(o.tax_cents for o in claimed)
            inv.total_cents = sum(o.total_cents for o in claimed)
            by_form: dict[str, int] = {}
            for o in claimed:
                by_form[forma_pago(o)] = by_form.get(forma_pago(o), 0) + o.total_cents
            # Several formas de pago: the one of the largest amount (SAT's guide).
            inv.forma_pago = max(sorted(by_form), key=lambda k: by_form[k])
            return inv.id
    except IntegrityError:
        raise AlreadyExists(f"La factura global de {period} ya se está emitiendo.") from None


def _build_global(settings: Settings, db: Database, invoice_id: int, year: int, month: int,
                  now: datetime | None) -> bytes:
    csd = load_csd(settings)
    with db.session() as s:
        inv = s.get(Invoice, invoice_id)
        assert inv is not None
        orders = list(s.scalars(select(Order).where(Order.global_invoice_id == invoice_id)
                                .order_by(Order.paid_at, Order.id)))
        lines = [ln for o in orders for ln in order_lines(s, o)]
        lines = [Line(ln.description, ln.reference, ln.price, ln.discount, ln.subtotal, ln.tax)
                 for ln in lines]
        cp = settings.invoicing.issuer_postal_code
        receptor = Receptor(catalogs.PUBLICO_EN_GENERAL_RFC,
                             catalogs.PUBLICO_EN_GENERAL_NOMBRE, cp, "616", "S01")
        fecha = local_now(cp, now)
        signed = build(settings, csd, folio=inv.folio, fecha=fecha, receptor=receptor,
                        lines=lines, forma_pago=inv.forma_pago,
                        expected=expected_amounts(orders, lines), informacion_global=(year, month))
        inv.fecha = fecha.isoformat()
    return signed


def substitute(settings: Settings, db: Database, mailer: Mailer, invoice_id: int, *,
               actor: audit.Actor, pac: Pac | None = None) -> InvoiceInfo:
    """Replace a factura with errors (motivo 01): issue a new one for the same order
    with the customer's fiscal data as they are now, related to it (TipoRelacion
    04), then cancel the old one with motivo 01 naming the new one. Returns the
    new factura."""
    pac = pac or make_pac(settings)
    with db.session() as s:
        old = s.get(Invoice, invoice_id)
        if old is None or old.uuid is None or old.kind != "order":
            raise NotFound("No existe esa factura timbrada de un pedido.")
        ref = s.scalar(select(Order.reference).where(Order.id == old.order_id))
        if affected(s.execute(update(Invoice).where(Invoice.id == invoice_id)
                              .where(Invoice.status == "valid")
                              .values(status="replacing"))) != 1:
            raise Forbidden(f"La factura {old.serie}-{old.folio} no está vigente.")
    try:
        new = issue_for_order(settings, db, mailer, ref or "", actor=actor, operator=True,
                              pac=pac, replaces=invoice_id)
    except SpaceError:
        with db.session() as s:
            s.execute(update(Invoice).where(Invoice.id == invoice_id)
                      .where(Invoice.status == "replacing").values(status="valid"))
        raise
    cancel(settings, db, invoice_id, "01", actor=actor, replacement=new.uuid, pac=pac)
    return new


# -- what the lifecycle job does ------------------------------------------------------------

@dataclass
class Report:
    globals_issued: list[str]
    restamped: list[str]
    errors: list[str]


def run(settings: Settings, db: Database, mailer: Mailer, now: datetime | None = None,
        pac: Pac | None = None) -> Report:
    """What runs with ``resguardo lifecycle run``: send again facturas left signed
    but not stamped (the PAC did not answer), e-mail those not yet sent, and issue
    the global factura of the month before once it is over. Idempotent."""
    pac = pac or make_pac(settings, now)
    report = Report([], [], [])
    with db.session() as s:
        pending = list(s.execute(select(Invoice.id, Invoice.kind, Order.reference,
                                        Invoice.period)
                                 .outerjoin(Order, Order.id == Invoice.order_id)
                                 .where(Invoice.status == "stamping")
                                 .where(Invoice.xml != "")))
    for _id, kind, ref, period in pending:
        try:
            if kind == "global" and period:
                y, m = (int(x) for x in period.split("-"))
                issue_global(settings, db, y, m, pac=pac, now=now)
            elif ref:
                issue_for_order(settings, db, mailer, ref, actor=audit.SYSTEM, operator=True,
                                pac=pac, now=now)
            report.restamped.append(ref or period or str(_id))
        except SpaceError as exc:
            report.errors.append(f"{ref or period}: {exc}")
    try:
        refresh_cancellations(settings, db, pac)
    except SpaceError as exc:
        report.errors.append(f"cancelaciones: {exc}")
    with db.session() as s:
        unsent = list(s.scalars(select(Invoice).where(Invoice.status == "valid")
                                .where(Invoice.kind == "order")
                                .where(Invoice.mailed_at.is_(None))))
        unsent_info = [to_info(s, inv) for inv in unsent]
    for info in unsent_info:
        _mail(settings, db, mailer, info)
    today = local_now(settings.invoicing.issuer_postal_code, now)
    year, month = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
    period = f"{year:04d}-{month:02d}"
    with db.session() as s:
        done = s.scalar(select(Invoice.id).where(Invoice.period == period)
                        .where(Invoice.status.in_(("valid", "cancelling", "cancel_pending"))))
    try:
        made = None if done else issue_global(settings, db, year, month, pac=pac, now=now)
        if made is not None:
            report.globals_issued.append(made.period or "")
    except SpaceError as exc:
        report.errors.append(f"global {year}-{month:02d}: {exc}")
    return report
