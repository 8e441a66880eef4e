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

:func:`spaces.commerce.pac.load_csd` gives the operator's CSD; satcfdi builds the
CFDI and seals it (SAT's XSLT for the cadena original, RSA-SHA256); it is
checked against SAT's schemas (fail closed: a CFDI SAT would refuse never
leaves); the signed XML is stored *before* the PAC is called, so a PAC that
does not answer is asked again with the same CFDI (PACs answer a repeat with
the stamp they made); the stamped XML is checked again and stored with its PDF
(:mod:`spaces.commerce.invoice_pdf`), and both are e-mailed. Cancellation (SAT's motivos
01–04) goes through the same PAC (:func:`cancel`, :func:`substitute`). Every
issue and cancellation is in the audit log of the order's spaces.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from spaces import sat
from spaces.commerce import fiscal, notices, rfc_claims
from spaces.commerce.pac import (
    CancelRequest,
    Csd,
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
from spaces.core.models import Account, Invoice, Order, OrderItem, Space, utcnow
from spaces.core.settings import Settings
from spaces.sat import catalogs

log = logging.getLogger(__name__)

CENT = Decimal("0.01")


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


def _info(s: Session, inv: Invoice) -> InvoiceInfo:
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
        return _info(s, inv)


def for_order(db: Database, reference: str) -> list[InvoiceInfo]:
    """The facturas of an order, newest first (one live at most)."""
    with db.session() as s:
        rows = s.scalars(select(Invoice).join(Order, Order.id == Invoice.order_id)
                         .where(Order.reference == reference)
                         .order_by(Invoice.id.desc())).all()
        return [_info(s, inv) for inv in rows]


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
        return [_info(s, inv) for inv in s.scalars(q.limit(limit))]


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


# -- building -------------------------------------------------------------------------------

def _text(value: str, limit: int) -> str:
    """Free text a CFDI can carry: no "|" (the cadena original's separator), no
    control characters, single spaces."""
    clean = "".join(" " if ch == "|" or ord(ch) < 32 else ch for ch in value)
    return " ".join(clean.split())[:limit]


@dataclass(frozen=True)
class _Line:
    description: str
    reference: str
    price: Decimal
    discount: Decimal
    subtotal: Decimal
    tax: Decimal


def _concepto(settings: Settings, line: _Line, *, global_: bool) -> Any:
    from satcfdi.create.cfd import cfdi40

    rate = Decimal(settings.billing.iva_rate).quantize(Decimal("0.000001"))
    taxed = line.subtotal > 0
    impuestos = cfdi40.Impuestos(traslados=cfdi40.Traslado(
        impuesto="002", tipo_factor="Tasa", tasa_o_cuota=rate, importe=line.tax,
        base=line.subtotal)) if taxed else None
    if global_:
        return cfdi40.Concepto(
            clave_prod_serv=catalogs.GLOBAL_CLAVE_PROD_SERV, cantidad=Decimal(1),
            clave_unidad=catalogs.GLOBAL_CLAVE_UNIDAD, descripcion="Venta",
            valor_unitario=line.price, descuento=line.discount or None,
            no_identificacion=line.reference, objeto_imp="02" if taxed else "01",
            impuestos=impuestos)
    return cfdi40.Concepto(
        clave_prod_serv=settings.invoicing.product_code, cantidad=Decimal(1),
        clave_unidad=settings.invoicing.unit_code, unidad="Servicio",
        descripcion=_text(line.description, 1000), valor_unitario=line.price,
        descuento=line.discount or None, no_identificacion=line.reference,
        objeto_imp="02" if taxed else "01", impuestos=impuestos)


@dataclass(frozen=True)
class _Receptor:
    rfc: str
    nombre: str
    codigo_postal: str
    regimen: str
    uso: str


def _build(settings: Settings, csd: Csd, *, folio: str, fecha: datetime, receptor: _Receptor,
           lines: list[_Line], forma_pago: str, expected: tuple[int, int, int, int],
           informacion_global: tuple[int, int] | None = None,
           replaces: str | None = None) -> bytes:
    """The signed CFDI, checked against SAT's schemas and against the amounts it
    must carry (``expected``: subtotal, discount, tax, total in centavos).
    InvoicingUnavailable if it is not exactly that (nothing leaves)."""
    from satcfdi.create.cfd import cfdi40

    i = settings.invoicing
    comprobante = cfdi40.Comprobante(
        emisor=cfdi40.Emisor(rfc=i.issuer_rfc, nombre=_text(i.issuer_name, 300),
                             regimen_fiscal=i.issuer_regime),
        lugar_expedicion=i.issuer_postal_code,
        receptor=cfdi40.Receptor(rfc=receptor.rfc, nombre=receptor.nombre,
                                 domicilio_fiscal_receptor=receptor.codigo_postal,
                                 regimen_fiscal_receptor=receptor.regimen,
                                 uso_cfdi=receptor.uso),
        conceptos=[_concepto(settings, ln, global_=informacion_global is not None)
                   for ln in lines],
        moneda=settings.billing.currency, tipo_de_comprobante="I", exportacion="01",
        serie=i.series, folio=folio, forma_pago=forma_pago, metodo_pago="PUE",
        informacion_global=cfdi40.InformacionGlobal(
            periodicidad="04", meses=f"{informacion_global[1]:02d}",
            ano=informacion_global[0]) if informacion_global else None,
        cfdi_relacionados=cfdi40.CfdiRelacionados(tipo_relacion="04",
                                                  cfdi_relacionado=replaces)
        if replaces else None,
        fecha=fecha)
    comprobante.sign(csd.signer)
    xml: bytes = comprobante.xml_bytes()
    root = sat.parse(xml).getroot()
    impuestos = root.find(f"{{{sat.CFDI_NS}}}Impuestos")
    got = (plans.to_cents(Decimal(root.get("SubTotal", "0"))),
           plans.to_cents(Decimal(root.get("Descuento", "0"))),
           plans.to_cents(Decimal(impuestos.get("TotalImpuestosTrasladados", "0")
                                  if impuestos is not None else "0")),
           plans.to_cents(Decimal(root.get("Total", "0"))))
    # The price before discount: the receipt shows subtotal after discount.
    if got != expected:
        log.error("cfdi amounts differ from the receipt: folio=%s got=%s expected=%s", folio,
                  got, expected)
        raise InvoicingUnavailable("No se pudo generar la factura: sus importes no coinciden "
                                   "con el recibo. Ya avisamos al equipo.")
    try:
        sat.validate(xml)
    except sat.InvalidCfdi as exc:
        log.error("cfdi refused by SAT's schema before stamping: folio=%s: %s", folio, exc)
        raise InvoicingUnavailable("No se pudo generar la factura: el comprobante no cumple "
                                   "el esquema del SAT. Ya avisamos al equipo.") from None
    return xml


def _order_lines(s: Session, order: Order) -> list[_Line]:
    c = plans.from_cents
    return [_Line(f"{it.description}, espacio {it.space_name}", order.reference,
                  c(it.price_cents), c(it.discount_cents), c(it.subtotal_cents),
                  c(it.tax_cents))
            for it in s.scalars(select(OrderItem).where(OrderItem.order_id == order.id)
                                .order_by(OrderItem.id))]


def _expected(orders: list[Order], lines: list[_Line]) -> tuple[int, int, int, int]:
    """What the receipt(s) say: price (SubTotal of the CFDI), discount, tax, total."""
    return (sum(plans.to_cents(ln.price) for ln in lines), sum(o.discount_cents for o in orders),
            sum(o.tax_cents for o in orders), sum(o.total_cents for o in orders))


def forma_pago(order: Order) -> str:
    return catalogs.FORMA_PAGO.get(order.payment_method or "", "04")


def _spaces_of(s: Session, order_ids: list[int]) -> list[tuple[int, str]]:
    names = sorted({n for n in s.scalars(select(OrderItem.space_name)
                                          .where(OrderItem.order_id.in_(order_ids)))})
    return [(sid, name) for sid, name in s.execute(
        select(Space.id, Space.name).where(Space.name.in_(names)))]


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
            for sid, name in _spaces_of(s, order_ids):
                audit.record(s, sid, audit.Action.INVOICE_ISSUED, actor=actor, space_name=name,
                             detail=_detail(inv, stamped.uuid))
        info = _info(s, inv)
    if done == 1:
        log.info("invoice stamped: %s uuid=%s receptor=%s total=%s pac=%s%s", info.name,
                 info.uuid, info.receptor_rfc, info.total, info.pac,
                 " (sandbox: not valid before SAT)" if info.sandbox else "")
    return info


def _detail(inv: Invoice, uuid: str | None) -> str:
    what = f"global {inv.period}" if inv.kind == "global" else f"RFC {inv.receptor_rfc}"
    return (f"factura {inv.serie}-{inv.folio} UUID {uuid} {what} total "
            f"{plans.format_mxn(plans.from_cents(inv.total_cents))}")


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
            return _info(s, live)
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
        receptor = _Receptor(inv.receptor_rfc, inv.receptor_nombre, a.codigo_postal,
                             a.regimen_fiscal, inv.uso_cfdi)
        lines = _order_lines(s, order)
        expected = (sum(plans.to_cents(ln.price) for ln in lines), order.discount_cents,
                    order.tax_cents, order.total_cents)
        fecha = local_now(settings.invoicing.issuer_postal_code, now)
        signed = _build(settings, csd, folio=inv.folio, fecha=fecha, receptor=receptor,
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
            return _info(s, live)
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
        lines = [ln for o in orders for ln in _order_lines(s, o)]
        lines = [_Line(ln.description, ln.reference, ln.price, ln.discount, ln.subtotal, ln.tax)
                 for ln in lines]
        cp = settings.invoicing.issuer_postal_code
        receptor = _Receptor(catalogs.PUBLICO_EN_GENERAL_RFC,
                             catalogs.PUBLICO_EN_GENERAL_NOMBRE, cp, "616", "S01")
        fecha = local_now(cp, now)
        signed = _build(settings, csd, folio=inv.folio, fecha=fecha, receptor=receptor,
                        lines=lines, forma_pago=inv.forma_pago,
                        expected=_expected(orders, lines), informacion_global=(year, month))
        inv.fecha = fecha.isoformat()
    return signed


# -- cancellation ---------------------------------------------------------------------------

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
        info = _info(s, inv)
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
    for sid, name in _spaces_of(s, order_ids):
        audit.record(s, sid, action, actor=actor, space_name=name,
                     detail=f"{_detail(inv, inv.uuid)}; {what}")


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
        unsent_info = [_info(s, inv) for inv in unsent]
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


def sello_matches(xml: bytes) -> bool:
    """Whether the CFDI's Sello verifies with its own Certificado over SAT's cadena
    original (used by tests and by operators checking a file)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    root = sat.parse(xml).getroot()
    cert = x509.load_der_x509_certificate(base64.b64decode(root.get("Certificado", "")))
    try:
        cert.public_key().verify(  # type: ignore[call-arg, union-attr]
            base64.b64decode(root.get("Sello", "")), sat.cadena_original(xml).encode(),
            padding.PKCS1v15(), hashes.SHA256())  # type: ignore[arg-type]
    except Exception:  # noqa: BLE001
        return False
    return True

