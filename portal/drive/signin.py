"""Signing in to the web drive: any user of a space (admin, editor or reader),
with the drive's own password and the same brute-force pause as the drive.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from portal.drive.common import bp
from portal.forms import MemberLoginForm
from portal.web import log_in_member, safe_next, state
from spaces.access import service, throttle

log = logging.getLogger(__name__)


@bp.route("/entrar", methods=["GET", "POST"])
def login() -> Any:
    """Any user of a space (admin, editor or reader) logs in to the web drive."""
    form = MemberLoginForm()
    st = state()
    if request.method == "GET" and request.args.get("espacio"):
        form.space.data = request.args["espacio"]
    if form.validate_on_submit():
        from spaces.commerce import space_admin

        space = service.login_name(form.space.data or "")
        # The drive user's pause, whichever door (the drive's too) earned it.
        who = throttle.member(space, form.username.data or "")
        addr = request.remote_addr or "?"
        if st.throttle.blocked(who, throttle.address(addr)):
            flash(_("Demasiados intentos. Espere un minuto e intente de nuevo."), "error")
            return render_template("drive/login.html", form=form), 429
        m = space_admin.authenticate_member(st.db, space, form.username.data or "",
                                            form.password.data or "")
        if m is None:
            st.throttle.failure(who, throttle.address(addr))
            flash(_("Espacio, usuario o contraseña incorrectos."), "error")
            return render_template("drive/login.html", form=form), 200
        st.throttle.success(who)
        log_in_member(m)  # a new session on login: no fixation
        log.info("web drive login: space=%s user=%s addr=%s", space, m.username, addr)
        home = url_for("drive.browse", name=space)
        nxt = safe_next(request.args.get("next"), home)
        return redirect(nxt if nxt.startswith(home) else home)
    return render_template("drive/login.html", form=form)

