"""Buying: the free space, plans with their price breakdown, the cart, checkout
with the service contract, the payment gateway (sandbox card page and the
webhook) and the customer's orders and receipts."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _

from portal.forms import (
    PERIOD_LABELS,
    ButtonForm,
    BuyForm,
    CardForm,
    CartItemForm,
    CheckoutForm,
    RemoveItemForm,
    domain_errors,
)
from portal.invoices import order_invoice_context, save_from
from portal.web import current_account, links, login_required, state
from spaces.commerce import accounts, billing, fiscal
from spaces.commerce.payments import SANDBOX_CARDS, CheckoutUrls, InvalidSignature, SandboxGateway
from spaces.core import formats, plans
from spaces.core.errors import NotFound, SpaceError

log = logging.getLogger(__name__)

bp = Blueprint("shop", __name__)


def _tier_choices() -> list[tuple[str, str]]:
    return [(t.name, f"{t.name} — {formats.size(t.quota_bytes)}")
            for t in plans.saleable_tiers(state().settings)]


@bp.post("/espacio-gratis")
@login_required
def claim_free() -> Any:
    """Create the free space, then redirect (a reload never posts again)."""
    st = state()
    account = current_account()
    assert account is not None
    form = ButtonForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        accounts.claim_free_space(st.settings, st.db, st.mailer, links(), account.id)
    except SpaceError as exc:
        flash(str(exc), "error")
        return redirect(url_for("public.home"))
    return redirect(url_for("shop.free_ready"))


@bp.get("/espacio-gratis")
@login_required
def free_ready() -> Any:
    """The free space's drive address: after creating it, and on every reload."""
    st = state()
    account = current_account()
    assert account is not None
    free = plans.free_tier(st.settings).name
    space = next((sp for sp in accounts.owned_spaces(st.db, account.id) if sp.tier == free),
                 None)
    if space is None:
        return redirect(url_for("public.home"))
    return render_template("shop/free_ready.html", space=space,
                           drive_url=links().drive(space.name))


def _selection(form: BuyForm) -> tuple[str, str, str]:
    tier = form.tier.data or form.tier.choices[0][0]
    period = form.period.data if form.period.data in plans.PERIODS else "monthly"
    naming = form.naming.data if form.naming.data in billing.NAMINGS else "username"
    return tier, period, naming


def _preview(tier: str, period: str, naming: str) -> dict[str, Any]:
    """The breakdown of a selection as "Agregar al carrito" would add it: for a
    logged-in account with the space's name, the action and any credit for the
    unused days of its current plan; else the catalogue's price."""
    st = state()
    account = current_account()
    line, problem = None, None
    try:
        if account is not None:
            line = billing.preview(st.settings, st.db, account.id, tier, period, naming)
            q = line.quote
        else:
            q = plans.quote(st.settings, tier, period)
    except SpaceError as exc:
        problem = str(exc)
        try:
            q = plans.quote(st.settings, tier, period)
        except SpaceError:
            q = plans.quote(st.settings, plans.saleable_tiers(st.settings)[0].name, "monthly")
    return {"quote": q, "line": line, "problem": problem}


def _buy_form() -> BuyForm:
    form = BuyForm()
    form.tier.choices = _tier_choices()
    if request.method == "GET":
        form.tier.data = request.args.get("tier") or form.tier.choices[0][0]
        form.period.data = request.args.get("period") or "monthly"
        form.naming.data = request.args.get("naming") or "username"
    return form


@bp.route("/planes", methods=["GET", "POST"])
def plans_page() -> Any:
    """Tiers, periods and the breakdown of the chosen one; POST adds exactly the
    selection of the form's fields to the cart. Without JavaScript "Ver precio"
    (a button of the same form) shows the breakdown of the selection; with it the
    breakdown follows each change (/planes/desglose)."""
    st = state()
    form = _buy_form()
    if request.method == "POST":
        if request.form.get("ver"):
            tier, period, naming = _selection(form)
            return redirect(url_for("shop.plans_page", tier=tier, period=period,
                                    naming=naming))
        if current_account() is None:
            return redirect(url_for("account.login", next=url_for("shop.plans_page")))
        if form.validate_on_submit():
            account = current_account()
            assert account is not None
            try:
                billing.add_to_cart(st.settings, st.db, account.id, form.tier.data or "",
                                    form.period.data or "", form.naming.data or "")
            except SpaceError as exc:
                flash(str(exc), "error")
            else:
                flash(_("Agregado al carrito."), "ok")
                return redirect(url_for("shop.cart"))
    table = {t.name: {p: plans.quote(st.settings, t.name, p).total for p in plans.PERIODS}
             for t in plans.saleable_tiers(st.settings)}
    return render_template("shop/plans.html", form=form, table=table,
                           period_labels=PERIOD_LABELS, **_preview(*_selection(form)))


@bp.get("/planes/desglose")
def price_preview() -> Any:
    """The breakdown of a selection (HTML fragment) for the plans page's script."""
    return render_template("shop/_preview.html", **_preview(*_selection(_buy_form())))


@bp.get("/carrito")
@login_required
def cart() -> Any:
    st = state()
    account = current_account()
    assert account is not None
    lines = billing.cart(st.settings, st.db, account.id)
    forms = []
    for ln in lines:
        f = CartItemForm(prefix=f"i{ln.id}", formdata=None)
        f.tier.choices = _tier_choices()
        f.item.data, f.tier.data, f.period.data = str(ln.id), ln.quote.tier, ln.quote.period
        r = RemoveItemForm(prefix=f"r{ln.id}", formdata=None)
        r.item.data = str(ln.id)
        forms.append((ln, f, r))
    totals = billing.Totals.of([ln.quote for ln in lines])
    return render_template("shop/cart.html", items=forms, totals=totals,
                           period_labels=PERIOD_LABELS)


@bp.post("/carrito/cambiar/<int:item_id>")
@login_required
def cart_change(item_id: int) -> Any:
    st = state()
    account = current_account()
    assert account is not None
    form = CartItemForm(prefix=f"i{item_id}")
    form.tier.choices = _tier_choices()
    if form.validate_on_submit():
        try:
            billing.change_cart_item(st.settings, st.db, account.id, item_id,
                                     form.tier.data or "", form.period.data or "")
            flash(_("Carrito actualizado."), "ok")
        except SpaceError as exc:
            flash(str(exc), "error")
    else:
        abort(400)
    return redirect(url_for("shop.cart"))


@bp.post("/carrito/quitar/<int:item_id>")
@login_required
def cart_remove(item_id: int) -> Any:
    st = state()
    account = current_account()
    assert account is not None
    form = RemoveItemForm(prefix=f"r{item_id}")
    if not form.validate_on_submit():
        abort(400)
    billing.remove_cart_item(st.db, account.id, item_id)
    flash(_("Quitado del carrito."), "ok")
    return redirect(url_for("shop.cart"))


def contract_text(version: str) -> str:
    from pathlib import Path

    path = Path(__file__).with_name("contracts") / f"contrato-{version}.txt"
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        log.error("contract text missing: %s", path)
        abort(500)


@dataclass(frozen=True)
class Contract:
    title: str
    subtitle: str
    #: (number, heading, text): "4", "Cambios de plan", "Al cambiar ..."
    clauses: list[tuple[str, str, str]]


def contract_document(text: str) -> Contract:
    """The contract's text as a document: its title, its version line and its
    numbered clauses, each one paragraph (the file's hard line breaks joined)."""
    blocks = [" ".join(line.strip() for line in b.splitlines() if line.strip())
              for b in re.split(r"\n\s*\n", text.strip())]
    head = text.strip().splitlines()
    title, subtitle = head[0].strip(), (head[1].strip() if len(head) > 1 else "")
    clauses = []
    for block in blocks:
        m = re.match(r"(\d+)\.\s+([^.]+)\.\s*(.*)", block)
        if m:
            clauses.append((m.group(1), m.group(2), m.group(3)))
    return Contract(title, subtitle, clauses)


@bp.get("/contrato")
def contract_page() -> Any:
    """The current contract of service, to read before buying (or print)."""
    version = state().settings.billing.contract_version
    return render_template("shop/contract.html",
                           contract=contract_document(contract_text(version)))


@bp.route("/pago", methods=["GET", "POST"])
@login_required
def checkout() -> Any:
    st = state()
    account = current_account()
    assert account is not None
    version = st.settings.billing.contract_version
    form = CheckoutForm()
    form.fill_choices()
    lines = billing.cart(st.settings, st.db, account.id)
    if not lines:
        flash(_("Su carrito está vacío."), "info")
        return redirect(url_for("shop.plans_page"))
    if form.validate_on_submit():
        try:
            if form.invoice.data:
                # The factura goes to these data, which become the account's defaults.
                save_from(form, account.id)
            order = billing.checkout(st.settings, st.db, account.id,
                                     form.contract_version.data or "",
                                     invoice=bool(form.invoice.data))
        except SpaceError as exc:
            flash(str(exc), "error")
        else:
            return redirect(_checkout_url(order))
    elif not form.is_submitted():
        form.prefill(fiscal.draft(st.db, account.id))
    form.contract_version.data = version
    return render_template("shop/checkout.html", form=form, lines=lines,
                           totals=billing.Totals.of([ln.quote for ln in lines]),
                           contract=contract_document(contract_text(version)),
                           version=version,
                           period_labels=PERIOD_LABELS)


def _checkout_url(order: billing.OrderInfo) -> str:
    st = state()
    urls = CheckoutUrls(
        pay_url=url_for("shop.sandbox_pay", reference=order.reference),
        return_url=url_for("shop.order_status", reference=order.reference, _external=True),
        webhook_url=url_for("shop.webhook", gateway=st.gateway.name, _external=True))
    return st.gateway.checkout_url(order.to_pay(), urls)


@bp.route("/pago/<reference>/pagar", methods=["GET", "POST"])
@login_required
def pay_again(reference: str) -> Any:
    """Send a pending order to the gateway again (after a declined card)."""
    st = state()
    account = current_account()
    assert account is not None
    try:
        order = billing.get_order(st.db, reference, account.id)
    except NotFound:
        abort(404)
    if order.status != "pending":
        return redirect(url_for("shop.order_status", reference=reference))
    return redirect(_checkout_url(order))


@bp.route("/sandbox/pagar/<reference>", methods=["GET", "POST"])
@login_required
def sandbox_pay(reference: str) -> Any:
    """The sandbox gateway's card page. On submit the sandbox decides the outcome
    from the test card, signs the webhook as a provider would, and it goes through
    the same verifying endpoint code as a real webhook."""
    st = state()
    if not isinstance(st.gateway, SandboxGateway):
        abort(404)
    account = current_account()
    assert account is not None
    try:
        order = billing.get_order(st.db, reference, account.id)
    except NotFound:
        abort(404)
    if order.status != "pending":
        return redirect(url_for("shop.order_status", reference=reference))
    form = CardForm()
    today = datetime.now(st.settings.portal.zone()).date()
    valid = form.is_submitted() and form.validate()
    if form.is_submitted() and domain_errors(form, {
            "expiry": lambda text: SandboxGateway.check_expiry(text, today)}) and valid:
        body, headers = st.gateway.charge(order.to_pay(), form.number.data or "")
        _deliver(st.gateway.name, body, headers)
        return redirect(url_for("shop.order_status", reference=reference))
    return render_template("shop/sandbox_pay.html", form=form, order=order, cards=SANDBOX_CARDS)


def _deliver(gateway: str, body: bytes, headers: dict[str, str]) -> billing.EventResult | None:
    st = state()
    try:
        event = st.gateway.parse_webhook(body, headers)
    except InvalidSignature as exc:
        log.warning("webhook refused: gateway=%s: %s", gateway, exc)
        return None
    return billing.process_event(st.settings, st.db, st.mailer, links(), event)


@bp.post("/pagos/webhook/<gateway>")
def webhook(gateway: str) -> Any:
    """The gateway's server-to-server notification. CSRF-exempt (it is signed);
    a bad signature gets 400; a duplicate gets 200 and changes nothing."""
    st = state()
    if gateway != st.gateway.name:
        abort(404)
    result = _deliver(gateway, request.get_data(cache=False), dict(request.headers))
    if result is None:
        return {"error": "invalid signature"}, 400
    return {"status": result.status, "order": result.order_reference}, 200


@bp.get("/pago/<reference>")
@login_required
def order_status(reference: str) -> Any:
    st = state()
    account = current_account()
    assert account is not None
    try:
        order = billing.get_order(st.db, reference, account.id)
    except NotFound:
        abort(404)
    events = [e for e in billing.list_events(st.db, reference) if e.order_reference == reference]
    last = events[0] if events else None
    return render_template("shop/order_status.html", order=order, last=last,
                           period_labels=PERIOD_LABELS, links=links(),
                           **order_invoice_context(order))


@bp.get("/pedidos")
@login_required
def orders() -> Any:
    st = state()
    account = current_account()
    assert account is not None
    return render_template("shop/orders.html",
                           orders=billing.list_orders(st.db, account_id=account.id))


@bp.get("/pedidos/<reference>/recibo")
def receipt(reference: str) -> Any:
    """Printable receipt of a paid order: its owner, an admin of one of its spaces,
    or an operator."""
    from portal.space import may_admin

    st = state()
    try:
        order = billing.get_order(st.db, reference)
    except NotFound:
        abort(404)
    account = current_account()
    allowed = (account is not None and (account.is_operator or account.id == order.account_id)) \
        or any(may_admin(ln.space_name) for ln in order.lines)
    if not allowed or order.status not in ("paid", "refunded"):
        abort(404)
    return render_template("shop/receipt.html", order=order, period_labels=PERIOD_LABELS)
