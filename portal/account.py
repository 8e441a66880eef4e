"""Accounts: sign-up, e-mail confirmation, login/logout, password reset, change
of password and e-mail, drive users' set-password links and portal login."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from portal.forms import (
    ButtonForm,
    ChangeEmailForm,
    ChangePasswordForm,
    FiscalForm,
    ForgotForm,
    LoginForm,
    MemberLoginForm,
    NewPasswordForm,
    RfcForm,
    SignUpForm,
    domain_errors,
)
from portal.web import (
    current_account,
    links,
    log_in,
    log_in_member,
    log_out,
    login_required,
    safe_next,
    state,
)
from spaces.access import service, throttle
from spaces.cfdi import rfc
from spaces.commerce import accounts, fiscal, rfc_claims, space_admin
from spaces.core.errors import SpaceError

bp = Blueprint("account", __name__)


@bp.route("/cuenta/registro", methods=["GET", "POST"])
def signup() -> Any:
    form = SignUpForm()
    if form.is_submitted():
        valid = form.validate()
        if domain_errors(form, {"username": accounts.normalize_account_username,
                                "email": accounts.normalize_email,
                                "password": service.check_password,
                                "rfc": rfc.normalize_rfc}) and valid:
            st = state()
            try:
                accounts.sign_up(st.settings, st.db, st.mailer, links(),
                                 form.username.data or "", form.email.data or "",
                                 form.password.data or "", form.rfc.data or "")
            except SpaceError as exc:
                flash(str(exc), "error")
            else:
                session["check_email"] = [form.email.data or "", False]
                return redirect(url_for("account.check_email"))
    return render_template("account/signup.html", form=form)


@bp.get("/cuenta/revise-su-correo")
def check_email() -> Any:
    """Where a sign-up or a reset request lands (redirect after POST)."""
    held = session.get("check_email")
    if not isinstance(held, list) or len(held) != 2:
        return redirect(url_for("public.home"))
    return render_template("account/check_email.html", email=str(held[0]), reset=bool(held[1]))


@bp.route("/cuenta/confirmar/<token>", methods=["GET", "POST"])
def confirm(token: str) -> Any:
    """GET shows a button; only the POST spends the link (mail scanners open links)."""
    st = state()
    form = ButtonForm()
    if form.validate_on_submit():
        try:
            account = accounts.confirm_email(st.db, token)
        except SpaceError as exc:
            flash(str(exc), "error")
            return redirect(url_for("account.login"))
        log_in(account)
        flash(_("Correo confirmado. ¡Bienvenido a Resguardo!"), "ok")
        return redirect(url_for("public.home"))
    if accounts.peek_token(st.db, token, "confirm") is None:
        flash(_("El enlace no es válido, ya se usó o caducó. Pida uno nuevo."), "error")
        return redirect(url_for("account.login"))
    return render_template("account/confirm.html", form=form)


@bp.route("/cuenta/entrar", methods=["GET", "POST"])
def login() -> Any:
    form = LoginForm()
    st = state()
    if form.validate_on_submit():
        login = form.login.data or ""
        # One subject per account whether it is named by username or e-mail.
        who, addr = accounts.login_subject(st.db, login), throttle.address(request.remote_addr)
        if st.throttle.blocked(who, addr):
            flash(_("Demasiados intentos. Espere un minuto e intente de nuevo."), "error")
            return render_template("account/login.html", form=form), 429
        account = accounts.authenticate(st.db, login, form.password.data or "")
        if account is None:
            st.throttle.failure(who, addr)
            flash(_("Usuario o contraseña incorrectos."), "error")
            return render_template("account/login.html", form=form), 200
        st.throttle.success(who)
        if not account.confirmed:
            accounts.send_confirmation(st.settings, st.db, st.mailer, links(), account)
            flash(_("Confirme su correo para entrar: le enviamos de nuevo el enlace."), "info")
            return render_template("account/login.html", form=form)
        log_in(account)
        return redirect(safe_next(request.args.get("next"), url_for("public.home")))
    return render_template("account/login.html", form=form)


@bp.post("/cuenta/salir")
def logout() -> Any:
    form = ButtonForm()
    if form.validate_on_submit():
        log_out()  # every copy of this session ends too
        flash(_("Salió de su cuenta."), "ok")
    return redirect(url_for("public.home"))


@bp.route("/cuenta/olvide", methods=["GET", "POST"])
def forgot() -> Any:
    form = ForgotForm()
    if form.validate_on_submit():
        st = state()
        accounts.request_password_reset(st.settings, st.db, st.mailer, links(),
                                        form.email.data or "")
        # The same answer whether or not the address has an account.
        session["check_email"] = [form.email.data or "", True]
        return redirect(url_for("account.check_email"))
    return render_template("account/forgot.html", form=form)


@bp.route("/cuenta/restablecer/<token>", methods=["GET", "POST"])
def reset(token: str) -> Any:
    st = state()
    form = NewPasswordForm()
    if form.validate_on_submit():
        try:
            account = accounts.reset_password(st.db, token, form.password.data or "")
        except SpaceError as exc:
            flash(str(exc), "error")
            return redirect(url_for("account.forgot"))
        log_in(account)
        flash(_("Contraseña cambiada."), "ok")
        return redirect(url_for("public.home"))
    if accounts.peek_token(st.db, token, "reset") is None:
        flash(_("El enlace no es válido, ya se usó o caducó. Pida uno nuevo."), "error")
        return redirect(url_for("account.forgot"))
    return render_template("account/new_password.html", form=form,
                           title=_("Elija una contraseña nueva"))


@bp.route("/cuenta/", methods=["GET", "POST"])
@login_required
def settings() -> Any:
    st = state()
    account = current_account()
    assert account is not None
    pw_form = ChangePasswordForm(prefix="pw")
    email_form = ChangeEmailForm(prefix="em")
    try:
        if pw_form.submit.data and pw_form.validate_on_submit():
            version = accounts.change_password(st.db, account.id, pw_form.current.data or "",
                                               pw_form.password.data or "")
            session["account_v"] = version  # the other sessions end; this one goes on
            flash(_("Contraseña cambiada."), "ok")
            return redirect(url_for("account.settings"))
        if email_form.submit.data and email_form.validate_on_submit():
            accounts.request_email_change(st.settings, st.db, st.mailer, links(), account.id,
                                          email_form.current.data or "",
                                          email_form.email.data or "")
            flash(_("Le enviamos un enlace al correo nuevo; el cambio se hace al abrirlo."),
                  "ok")
            return redirect(url_for("account.settings"))
    except SpaceError as exc:
        flash(str(exc), "error")
    return settings_page(account, pw_form=pw_form, email_form=email_form)


def settings_page(account: accounts.AccountInfo, **forms: Any) -> Any:
    """« Mi cuenta » with its forms (those given keep what was typed and its errors)."""
    forms.setdefault("pw_form", ChangePasswordForm(prefix="pw", formdata=None))
    forms.setdefault("email_form", ChangeEmailForm(prefix="em", formdata=None))
    if "fiscal_form" not in forms:
        forms["fiscal_form"] = FiscalForm(prefix="fi", formdata=None)
        forms["fiscal_form"].prefill(fiscal.draft(state().db, account.id))
    forms["fiscal_form"].fill_choices()
    if "rfc_form" not in forms:
        forms["rfc_form"] = RfcForm(formdata=None)
        forms["rfc_form"].rfc.data = account.rfc or ""
    return render_template("account/settings.html", account=account, **forms)


@bp.post("/cuenta/rfc")
@login_required
def rfc_submit() -> Any:
    """The account's RFC and its Constancia de Situación Fiscal, for an operator to
    verify: only a verified RFC names a space (see spaces.commerce.rfc_claims)."""
    st = state()
    account = current_account()
    assert account is not None
    form = RfcForm()
    if form.validate_on_submit():
        try:
            pdf = form.constancia.data.read(rfc_claims.MAX_DOCUMENT_BYTES + 1)
            r = rfc_claims.submit(st.settings, st.db, account.id, form.rfc.data or "", pdf)
        except SpaceError as exc:
            flash(str(exc), "error")
        else:
            flash(_("Recibimos su constancia del RFC %(rfc)s: la revisaremos y le avisaremos "
                    "aquí.", rfc=r), "ok")
            return redirect(url_for("account.settings"))
    else:
        flash(_("Escriba el RFC y elija el PDF de su Constancia de Situación Fiscal."),
              "error")
    return settings_page(account, rfc_form=form)


@bp.route("/cuenta/cambiar-correo/<token>", methods=["GET", "POST"])
def email_change(token: str) -> Any:
    st = state()
    form = ButtonForm()
    if form.validate_on_submit():
        try:
            account = accounts.confirm_email_change(st.db, token)
        except SpaceError as exc:
            flash(str(exc), "error")
            return redirect(url_for("public.home"))
        flash(_("Su correo ahora es %(email)s.", email=account.email), "ok")
        return redirect(url_for("public.home"))
    if accounts.peek_token(st.db, token, "email") is None:
        flash(_("El enlace no es válido, ya se usó o caducó. Pida uno nuevo."), "error")
        return redirect(url_for("public.home"))
    return render_template("account/confirm.html", form=form, email_change=True)


@bp.route("/acceso/<token>", methods=["GET", "POST"])
def member_password(token: str) -> Any:
    """A drive user's one-time link to set the password of the drive."""
    st = state()
    link = space_admin.peek_member_link(st.db, token)
    form = NewPasswordForm()
    if form.validate_on_submit():
        try:
            done = space_admin.set_member_password(st.db, token, form.password.data or "",
                                                   address=request.remote_addr)
        except SpaceError as exc:
            flash(str(exc), "error")
            return render_template("account/member_password.html", form=None, link=None)
        session["password_done"] = [done.space, done.username]
        return redirect(url_for("account.member_password_done"))  # F5 posts nothing again
    if link is None:
        flash(_("El enlace no es válido, ya se usó o caducó. Pida uno nuevo al "
                "administrador del espacio."), "error")
        return render_template("account/member_password.html", form=None, link=None), 410
    return render_template("account/member_password.html", form=form, link=link,
                           drive_url=links().drive(link.space))


@bp.get("/acceso/listo")
def member_password_done() -> Any:
    """Where a drive user lands once the password is saved (redirect after POST)."""
    held = session.get("password_done")
    if not isinstance(held, list) or len(held) != 2:
        return redirect(url_for("public.home"))
    space, username = str(held[0]), str(held[1])
    return render_template("account/member_password_done.html", username=username,
                           drive_url=links().drive(space))


@bp.route("/cuenta/entrar-unidad", methods=["GET", "POST"])
def member_login() -> Any:
    """Space admins who are drive users (no portal account) log in here."""
    form = MemberLoginForm()
    st = state()
    if form.validate_on_submit():
        # The drive user's pause, whichever door (the drive's too) earned it.
        who = throttle.member(form.space.data or "", form.username.data or "")
        addr = throttle.address(request.remote_addr)
        if st.throttle.blocked(who, addr):
            flash(_("Demasiados intentos. Espere un minuto e intente de nuevo."), "error")
            return render_template("account/member_login.html", form=form), 429
        m = space_admin.authenticate_member(st.db, form.space.data or "", form.username.data or "",
                                            form.password.data or "")
        if m is None or m.role != "admin":
            if m is None:
                st.throttle.failure(who, addr)
            flash(_("Datos incorrectos, o el usuario no es administrador del espacio."),
                  "error")
            return render_template("account/member_login.html", form=form)
        st.throttle.success(who)
        log_in_member(m)
        return redirect(url_for("space.overview", name=m.space.name))
    return render_template("account/member_login.html", form=form)


