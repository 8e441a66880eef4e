"""Facturas in the portal: the account's fiscal data, asking for the factura of an
order and downloading its XML and PDF (the order's owner and operators only:
anyone else gets 404), and the operators' list, cancellation (SAT's motivos),
substitution and the month's global factura. The rules are in
:mod:`spaces.commerce.invoicing` and :mod:`spaces.commerce.fiscal`."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from portal.account import settings_page
from portal.forms import ButtonForm, FiscalForm, InvoiceCancelForm
from portal.web import (
    audit_actor,
    current_account,
    login_required,
    operator_required,
    state,
)
from spaces.commerce import billing, fiscal, invoice_cancel, invoice_records, invoicing
from spaces.commerce.pac import local_now
from spaces.core.errors import NotFound, SpaceError
from spaces.sat import catalogs

log = logging.getLogger(__name__)

bp = Blueprint("invoices", __name__)


def save_from(form: FiscalForm, account_id: int) -> fiscal.FiscalData:
    """Check and store the form's fiscal data (SpaceError with the reason)."""
    st = state()
    data = fiscal.check(st.settings, form.rfc.data or "", form.razon_social.data or "",
                        form.regimen_fiscal.data or "", form.codigo_postal.data or "",
                        form.uso_cfdi.data or "")
    fiscal.save(st.settings, st.db, account_id, data)
    return data


@bp.post("/cuenta/fiscal")
@login_required
def fiscal_submit() -> Any:
    account = current_account()
    assert account is not None
    form = FiscalForm(prefix="fi")
    form.fill_choices()
    if form.validate_on_submit():
        try:
            save_from(form, account.id)
        except SpaceError as exc:
            flash(str(exc), "error")
        else:
            flash(_("Datos fiscales guardados: sus facturas saldrán a este nombre."), "ok")
            return redirect(url_for("account.settings") + "#fiscal")
    return settings_page(current_account() or account, fiscal_form=form)


@bp.post("/pago/<reference>/factura")
@login_required
def request_invoice(reference: str) -> Any:
    """The customer asks for the factura of a paid order (within its month)."""
    st = state()
    account = current_account()
    assert account is not None
    if not ButtonForm().validate_on_submit():
        abort(400)
    try:
        info = invoicing.issue_for_order(st.settings, st.db, st.mailer, reference,
                                         actor=audit_actor(), account_id=account.id)
    except NotFound:
        abort(404)
    except SpaceError as exc:
        flash(str(exc), "error")
    else:
        flash(_("Factura %(name)s emitida; también la enviamos a su correo.",
                name=info.name), "ok")
    return redirect(url_for("shop.order_status", reference=reference) + "#factura")


def _allowed(invoice_id: int) -> invoice_records.InvoiceInfo:
    """The factura if the visitor is its customer or an operator; 404 otherwise."""
    st = state()
    account = current_account()
    if account is None:
        abort(404)
    try:
        info = invoice_records.get_invoice(st.db, invoice_id)
    except NotFound:
        abort(404)
    if not (account.is_operator or invoice_records.may_see(st.db, invoice_id, account.id)):
        abort(404)
    if info.uuid is None:
        abort(404)
    return info


@bp.get("/facturas/<int:invoice_id>.xml")
def download_xml(invoice_id: int) -> Any:
    info = _allowed(invoice_id)
    xml, _pdf = invoice_records.files(state().db, invoice_id)
    return _attachment(xml, "application/xml", f"{info.name}-{info.uuid}.xml")


@bp.get("/facturas/<int:invoice_id>.pdf")
def download_pdf(invoice_id: int) -> Any:
    info = _allowed(invoice_id)
    _xml, pdf = invoice_records.files(state().db, invoice_id)
    if pdf is None:
        abort(404)
    return _attachment(pdf, "application/pdf", f"{info.name}-{info.uuid}.pdf")


def _attachment(data: bytes, mimetype: str, name: str) -> Any:
    from flask import Response

    resp = Response(data, mimetype=mimetype)
    resp.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    resp.headers["Cache-Control"] = "private, no-store"
    resp.headers["Content-Security-Policy"] = "sandbox"
    return resp


# -- operators --------------------------------------------------------------------------------

@bp.get("/operador/facturas")
@operator_required
def operator_list() -> Any:
    st = state()
    q = (request.args.get("q") or "").strip()
    form = InvoiceCancelForm(formdata=None)
    form.motivo.choices = [(k, f"{k} — {v}") for k, v in catalogs.MOTIVOS_CANCELACION.items()]
    today = local_now(st.settings.invoicing.issuer_postal_code)
    last = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
    return render_template("operator/invoices.html", q=q,
                           invoices=invoice_records.list_invoices(st.db, q, limit=500),
                           cancel_form=form, button=ButtonForm(formdata=None),
                           motivos=catalogs.MOTIVOS_CANCELACION,
                           last_month=f"{last[0]:04d}-{last[1]:02d}")


@bp.post("/operador/facturas/<int:invoice_id>/cancelar")
@operator_required
def operator_cancel(invoice_id: int) -> Any:
    st = state()
    form = InvoiceCancelForm()
    form.motivo.choices = [(k, k) for k in catalogs.MOTIVOS_CANCELACION]
    if not form.validate_on_submit():
        abort(400)
    try:
        if form.motivo.data == "01":
            new = invoicing.substitute(st.settings, st.db, st.mailer, invoice_id,
                                       actor=audit_actor())
            flash(_("Factura sustituida por %(name)s (UUID %(uuid)s) y cancelada con el motivo "
                    "01.", name=new.name, uuid=new.uuid), "ok")
        else:
            info = invoice_cancel.cancel(st.settings, st.db, invoice_id, form.motivo.data or "",
                                         actor=audit_actor())
            flash(_("Factura %(name)s: %(status)s.", name=info.name,
                    status=_("cancelada") if info.status == "cancelled"
                    else _("cancelación en espera de que el receptor la acepte")), "ok")
    except SpaceError as exc:
        flash(str(exc), "error")
    return redirect(url_for("invoices.operator_list", q=request.args.get("q", "")))


@bp.post("/operador/facturas/pedido/<reference>")
@operator_required
def operator_issue(reference: str) -> Any:
    """An operator issues (again) the factura of an order, with no month window."""
    st = state()
    if not ButtonForm().validate_on_submit():
        abort(400)
    try:
        info = invoicing.issue_for_order(st.settings, st.db, st.mailer, reference,
                                         actor=audit_actor(), operator=True)
        flash(_("Factura %(name)s emitida.", name=info.name), "ok")
    except SpaceError as exc:
        flash(str(exc), "error")
    return redirect(url_for("invoices.operator_list", q=reference))


@bp.post("/operador/facturas/global")
@operator_required
def operator_global() -> Any:
    st = state()
    if not ButtonForm().validate_on_submit():
        abort(400)
    period = (request.form.get("period") or "").strip()
    try:
        year, month = (int(x) for x in period.split("-"))
        made = invoicing.issue_global(st.settings, st.db, year, month, actor=audit_actor())
    except ValueError:
        flash(_("Escriba el mes como AAAA-MM."), "error")
    except SpaceError as exc:
        flash(str(exc), "error")
    else:
        if made is None:
            flash(_("No hay ventas de %(period)s sin factura.", period=period), "info")
        else:
            flash(_("Factura global %(name)s de %(period)s emitida.", name=made.name,
                    period=period), "ok")
    return redirect(url_for("invoices.operator_list"))


@bp.post("/operador/reembolsos")
@operator_required
def operator_refund() -> Any:
    """Record a refund made in the gateway: the factura is cancelled (motivo 03)."""
    from spaces.commerce import refunds

    st = state()
    if not ButtonForm().validate_on_submit():
        abort(400)
    reference = (request.form.get("reference") or "").strip().upper()
    try:
        done = refunds.refund_order(st.settings, st.db, reference, actor=audit_actor())
    except SpaceError as exc:
        flash(str(exc), "error")
    else:
        flash(_("Reembolso de %(ref)s por %(amount)s registrado; factura: %(factura)s.",
                ref=done.reference, amount=done.amount, factura=done.factura), "ok")
    return redirect(url_for("invoices.operator_list", q=reference))


def order_invoice_context(order: billing.OrderInfo) -> dict[str, Any]:
    """What the order page shows about its factura."""
    st = state()
    facturas = invoice_records.for_order(st.db, order.reference)
    live = next((f for f in facturas if f.live), None)
    month_open = invoicing.may_request(st.settings, order.paid_at)
    data = fiscal.get(st.db, order.account_id)
    return {"invoice": live, "cancelled_invoices": [f for f in facturas if not f.live],
            "may_request": order.status == "paid" and live is None and month_open
            and order.invoice_state != "global",
            "in_global": order.invoice_state == "global", "month_open": month_open,
            "fiscal": data, "invoice_form": ButtonForm(formdata=None)}
