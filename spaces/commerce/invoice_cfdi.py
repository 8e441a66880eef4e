"""The CFDI 4.0 de Ingreso of a factura: its conceptos from the order lines, the
receptor, the comprobante built and sealed with the CSD by satcfdi, its amounts
compared with the receipt and the whole checked against SAT's schemas before it
may leave (fail closed); the forma de pago from how the gateway says it was
paid; and checking a Sello against its own Certificado.

What is issued, to whom and when is :mod:`spaces.commerce.invoicing`.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from spaces import sat
from spaces.commerce.pac import Csd, InvoicingUnavailable
from spaces.core import plans
from spaces.core.models import Order, OrderItem
from spaces.core.settings import Settings
from spaces.sat import catalogs

log = logging.getLogger(__name__)


def _text(value: str, limit: int) -> str:
    """Free text a CFDI can carry: no "|" (the cadena original's separator), no
    control characters, single spaces."""
    clean = "".join(" " if ch == "|" or ord(ch) < 32 else ch for ch in value)
    return " ".join(clean.split())[:limit]


@dataclass(frozen=True)
class Line:
    """One concepto: an order line (the order's reference as NoIdentificacion)."""

    description: str
    reference: str
    price: Decimal
    discount: Decimal
    subtotal: Decimal
    tax: Decimal


def _concepto(settings: Settings, line: Line, *, global_: bool) -> Any:
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
class Receptor:
    """Who the factura is made out to."""

    rfc: str
    nombre: str
    codigo_postal: str
    regimen: str
    uso: str


def build(settings: Settings, csd: Csd, *, folio: str, fecha: datetime, receptor: Receptor,
           lines: list[Line], forma_pago: str, expected: tuple[int, int, int, int],
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


def order_lines(s: Session, order: Order) -> list[Line]:
    """The order's lines as conceptos (amounts from the receipt's centavos)."""
    c = plans.from_cents
    return [Line(f"{it.description}, espacio {it.space_name}", order.reference,
                  c(it.price_cents), c(it.discount_cents), c(it.subtotal_cents),
                  c(it.tax_cents))
            for it in s.scalars(select(OrderItem).where(OrderItem.order_id == order.id)
                                .order_by(OrderItem.id))]


def expected_amounts(orders: list[Order], lines: list[Line]) -> tuple[int, int, int, int]:
    """What the receipt(s) say: price (SubTotal of the CFDI), discount, tax, total."""
    return (sum(plans.to_cents(ln.price) for ln in lines), sum(o.discount_cents for o in orders),
            sum(o.tax_cents for o in orders), sum(o.total_cents for o in orders))


def forma_pago(order: Order) -> str:
    """SAT's forma de pago of how the gateway says the order was paid (04 if unknown)."""
    return catalogs.FORMA_PAGO.get(order.payment_method or "", "04")


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
