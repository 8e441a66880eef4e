"""The operator's pages (site-wide administrators from ``resguardo admin
create``): every account, space, order and payment, with search; suspend or
resume a space; change its tier by hand; create and revoke the bearer tokens of
the operator REST API (``/api/v1/``). Anyone else gets 404."""

from __future__ import annotations

import logging
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
from sqlalchemy import select

from portal.downloads import send_stored
from portal.forms import ApiTokenForm, OperatorSpaceForm, ReviewForm, RevokeApiTokenForm
from portal.web import audit_actor, current_account, operator_required, state
from spaces.access import apitokens, service
from spaces.commerce import accounts, billing, invoice_records, rfc_claims
from spaces.core import plans
from spaces.core.errors import SpaceError
from spaces.core.models import Account, Space
from spaces.files.store import store_for

bp = Blueprint("operator", __name__, url_prefix="/operador")


def _owners() -> dict[int, str]:
    with state().db.session() as s:
        return dict(s.execute(select(Space.id, Account.username)
                              .join(Account, Account.id == Space.account_id)).all())


@bp.get("/")
@operator_required
def dashboard() -> Any:
    st = state()
    q = (request.args.get("q") or "").strip()
    spaces = [sp for sp in service.list_spaces(st.db)
              if not q or q.lower() in sp.name or q.lower() in (sp.owner_email or "").lower()
              or q.lstrip("#") == str(sp.id)]
    forms = {}
    for sp in spaces:
        f = OperatorSpaceForm(prefix=f"s{sp.id}", formdata=None)
        f.tier.choices = [(t.name, t.name) for t in plans.list_tiers(st.settings)]
        f.tier.data = sp.tier
        forms[sp.id] = f
    return render_template("operator/dashboard.html", q=q, spaces=spaces, forms=forms,
                           rfc_pending=len(rfc_claims.pending(st.db)),
                           owners=_owners(), accounts=accounts.list_accounts(st.db, q),
                           orders=billing.list_orders(st.db, search=q, limit=200),
                           invoices=invoice_records.list_invoices(st.db, q, limit=50),
                           events=billing.list_events(st.db, q, limit=200))


@bp.post("/espacios/<name>")
@operator_required
def space_action(name: str) -> Any:
    st = state()
    try:
        space = service.get_space(st.db, name)
    except SpaceError:
        abort(404)
    form = OperatorSpaceForm(prefix=f"s{space.id}")
    form.tier.choices = [(t.name, t.name) for t in plans.list_tiers(st.settings)]
    if not form.validate_on_submit():
        abort(400)
    operator = current_account()
    try:
        if form.action.data == "suspend":
            service.set_status(st.db, space.name, "suspended", actor=audit_actor())
            flash(_("Espacio %(name)s suspendido.", name=space.name), "ok")
        elif form.action.data == "resume":
            service.set_status(st.db, space.name, "active", actor=audit_actor())
            flash(_("Espacio %(name)s reactivado.", name=space.name), "ok")
        elif form.action.data == "tier":
            service.change_tier(st.settings, st.db, space.name, form.tier.data or "",
                                actor=audit_actor())
            flash(_("Espacio %(name)s ahora en plan %(tier)s.", name=space.name,
                    tier=form.tier.data), "ok")
        else:
            abort(400)
    except SpaceError as exc:
        flash(str(exc), "error")
    import logging

    logging.getLogger(__name__).info("operator action: operator=%s space=%s action=%s tier=%s",
                                     operator.username if operator else "?", space.name,
                                     form.action.data, form.tier.data)
    return redirect(url_for("operator.dashboard", q=request.args.get("q", "")))


@bp.route("/tokens", methods=["GET", "POST"])
@operator_required
def tokens() -> Any:
    """The API's tokens. A new token is shown once, in the answer to the POST
    that creates it (never flashed: the session cookie is readable by the
    browser, and it would outlive the page); only its SHA-256 is stored."""
    st = state()
    form = ApiTokenForm()
    created: tuple[str, str] | None = None
    status = 200
    if form.validate_on_submit():
        name = (form.name.data or "").strip()
        try:
            created = (name, apitokens.create(st.db, name))
        except SpaceError as exc:
            form.name.errors = [str(exc)]
            status = 400
        else:
            operator = current_account()
            logging.getLogger(__name__).info(
                "api token created: name=%s operator=%s", name,
                operator.username if operator else "?")
            form = ApiTokenForm(formdata=None)
    elif form.is_submitted():
        status = 400
    return render_template("operator/tokens.html", form=form, created=created,
                           tokens=apitokens.list_tokens(st.db),
                           revoke_form=RevokeApiTokenForm(formdata=None),
                           api_url=request.host_url.rstrip("/") + "/api/v1"), status


@bp.post("/tokens/revocar")
@operator_required
def revoke_token() -> Any:
    form = RevokeApiTokenForm()
    if not form.validate_on_submit():
        abort(400)
    name = form.name.data or ""
    try:
        apitokens.revoke(state().db, name)
    except SpaceError as exc:
        flash(str(exc), "error")
    else:
        operator = current_account()
        logging.getLogger(__name__).info("api token revoked: name=%s operator=%s", name,
                                         operator.username if operator else "?")
        flash(_("Token «%(name)s» revocado: la API ya no lo acepta.", name=name), "ok")
    return redirect(url_for("operator.tokens"))


# -- RFC ownership: the constancias waiting for an operator ---------------------------------


@bp.get("/rfc")
@operator_required
def rfc_claims_page() -> Any:
    """Constancias de Situación Fiscal to compare with the RFC and the account that
    sent them; approving one is what lets an RFC name a space (spaces.commerce.rfc_claims)."""
    st = state()
    return render_template("operator/rfc.html", claims=rfc_claims.pending(st.db),
                           form=ReviewForm(formdata=None))


@bp.get("/rfc/<int:account_id>/constancia.pdf")
@operator_required
def rfc_document(account_id: int) -> Any:
    st = state()
    try:
        path = rfc_claims.document(st.settings, st.db, account_id)
    except SpaceError:
        abort(404)
    store = store_for(st.settings)
    try:
        fh = store.open_read(path)
    except OSError:  # gone meanwhile, or not a plain file
        abort(404)
    resp = send_stored(store, fh, f"constancia-{account_id}.pdf", mimetype="application/pdf")
    # A PDF from a customer is opened, never run as the portal.
    resp.headers["Content-Security-Policy"] = "sandbox"
    return resp


@bp.post("/rfc/<int:account_id>/aprobar", defaults={"action": "aprobar"})
@bp.post("/rfc/<int:account_id>/rechazar", defaults={"action": "rechazar"})
@operator_required
def rfc_review(account_id: int, action: str) -> Any:
    st = state()
    form = ReviewForm()
    if not form.validate_on_submit():
        abort(400)
    operator = current_account()
    by = f"operator:{operator.username if operator else '?'}"
    try:
        if action == "aprobar":
            r = rfc_claims.approve(st.db, account_id, by)
            flash(_("RFC %(rfc)s verificado.", rfc=r), "ok")
        else:
            rfc_claims.reject(st.db, account_id, by, form.motivo.data or "")
            flash(_("Constancia rechazada; la cuenta ve el motivo."), "ok")
    except SpaceError as exc:
        flash(str(exc), "error")
    return redirect(url_for("operator.rfc_claims_page"))
