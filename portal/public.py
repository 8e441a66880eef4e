"""Public pages: home (the customer's dashboard once logged in) and language."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    current_app,
    redirect,
    render_template,
    request,
    send_from_directory,
    session,
)

from portal.forms import ButtonForm
from portal.web import current_account, links, safe_next, state
from spaces.commerce import accounts
from spaces.core import plans

bp = Blueprint("public", __name__)


@bp.get("/")
def home() -> Any:
    st = state()
    account = current_account()
    owned = accounts.owned_spaces(st.db, account.id) if account else []
    free = plans.free_tier(st.settings)
    return render_template("home.html", spaces=owned, tiers=plans.list_tiers(st.settings),
                           storage=st.settings.server.public_url or links().home(),
                           trash_days=st.settings.trash.days,
                           annual_discount=plans.period_discount(st.settings, "annual"),
                           free_tier=free, claim_form=ButtonForm(), links=links(),
                           show_free_banner=bool(account and not account.ever_had_space),
                           monthly=lambda t: plans.quote(st.settings, t.name, "monthly"))


@bp.get("/favicon.ico")
def favicon() -> Any:
    """Browsers ask for /favicon.ico whatever the page says: the SVG icon."""
    return send_from_directory(current_app.static_folder or "static", "favicon.svg",
                               mimetype="image/svg+xml", max_age=86400)


@bp.get("/idioma/<lang>")
def language(lang: str) -> Any:
    if lang in ("es", "en"):
        session["lang"] = lang
    return redirect(safe_next(request.args.get("next"), "/"))
