"""Flask-WTF forms. Every form carries a CSRF token; labels are Spanish source
strings translated by Flask-Babel (lazy, so each request gets its locale)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    BooleanField,
    EmailField,
    HiddenField,
    PasswordField,
    RadioField,
    SelectField,
    StringField,
    SubmitField,
)
from wtforms.validators import DataRequired, EqualTo, Length, Optional

from spaces.core.errors import SpaceError
from spaces.core.passwords import MIN_PASSWORD_LENGTH
from spaces.sat import catalogs

PERIOD_LABELS = {
    "monthly": _l("Mensual"),
    "bimonthly": _l("Bimestral"),
    "quarterly": _l("Trimestral"),
    "semiannual": _l("Semestral"),
    "annual": _l("Anual"),
}

#: "Plan 4G por un mes": how long a line of a cart or a receipt lasts.
PERIOD_SPANS = {
    "monthly": _l("un mes"),
    "bimonthly": _l("dos meses"),
    "quarterly": _l("tres meses"),
    "semiannual": _l("seis meses"),
    "annual": _l("un año"),
}

_pw = [DataRequired(), Length(min=MIN_PASSWORD_LENGTH, max=200)]


class SignUpForm(FlaskForm):
    username = StringField(_l("Usuario"), validators=[DataRequired(), Length(max=63)],
                           description=_l("De preferencia relacionado con el nombre de su "
                                          "empresa; también será el nombre de su espacio."))
    email = EmailField(_l("Correo electrónico"), validators=[DataRequired(), Length(max=254)])
    password = PasswordField(_l("Contraseña"), validators=_pw,
                             description=_l("Al menos 8 caracteres."))
    rfc = StringField(_l("RFC (opcional)"), validators=[Optional(), Length(max=14)],
                      description=_l("12 caracteres (persona moral) o 13 (persona física)."))
    submit = SubmitField(_l("Crear cuenta"))


class LoginForm(FlaskForm):
    login = StringField(_l("Usuario o correo"), validators=[DataRequired(), Length(max=254)])
    password = PasswordField(_l("Contraseña"), validators=[DataRequired(), Length(max=200)])
    submit = SubmitField(_l("Entrar"))


class MemberLoginForm(FlaskForm):
    space = StringField(_l("Espacio"), validators=[DataRequired(), Length(max=63)])
    username = StringField(_l("Usuario de la unidad"), validators=[DataRequired(),
                                                                   Length(max=64)])
    password = PasswordField(_l("Contraseña"), validators=[DataRequired(), Length(max=200)])
    submit = SubmitField(_l("Entrar"))


class ForgotForm(FlaskForm):
    email = EmailField(_l("Correo electrónico"), validators=[DataRequired(), Length(max=254)])
    submit = SubmitField(_l("Enviar enlace"))


class NewPasswordForm(FlaskForm):
    password = PasswordField(_l("Contraseña nueva"), validators=_pw)
    confirm = PasswordField(_l("Repita la contraseña"),
                            validators=[DataRequired(), EqualTo("password",
                                                                _l("Las contraseñas no "
                                                                   "coinciden."))])
    submit = SubmitField(_l("Guardar contraseña"))


class ChangePasswordForm(FlaskForm):
    current = PasswordField(_l("Contraseña actual"), validators=[DataRequired()])
    password = PasswordField(_l("Contraseña nueva"), validators=_pw)
    submit = SubmitField(_l("Cambiar contraseña"))


class ChangeEmailForm(FlaskForm):
    current = PasswordField(_l("Contraseña actual"), validators=[DataRequired()])
    email = EmailField(_l("Correo nuevo"), validators=[DataRequired(), Length(max=254)])
    submit = SubmitField(_l("Cambiar correo"))


class RfcForm(FlaskForm):
    rfc = StringField(_l("RFC"), validators=[DataRequired(), Length(max=14)],
                      description=_l("12 caracteres (persona moral) o 13 (persona física)."))
    constancia = FileField(_l("Constancia de Situación Fiscal (PDF del SAT)"),
                           validators=[FileRequired()])
    submit = SubmitField(_l("Enviar a revisión"))


class ReviewForm(FlaskForm):
    motivo = StringField(_l("Motivo (si la rechaza)"), validators=[Length(max=300)])
    submit = SubmitField(_l("Aplicar"))


class ButtonForm(FlaskForm):
    """A form that is only a button (with its CSRF token)."""

    submit = SubmitField(_l("Continuar"))


class BuyForm(FlaskForm):
    tier = SelectField(_l("Plan"), validators=[DataRequired()])
    period = SelectField(_l("Periodo"), validators=[DataRequired()],
                         choices=list(PERIOD_LABELS.items()))
    naming = RadioField(_l("Nombre del espacio"), validators=[DataRequired()],
                        choices=[("username", _l("Mi nombre de usuario")),
                                 ("rfc", _l("Mi RFC"))], default="username")
    submit = SubmitField(_l("Agregar al carrito"))


class CartItemForm(FlaskForm):
    item = HiddenField(validators=[DataRequired()])
    tier = SelectField(_l("Plan"), validators=[DataRequired()])
    period = SelectField(_l("Periodo"), validators=[DataRequired()],
                         choices=list(PERIOD_LABELS.items()))
    submit = SubmitField(_l("Cambiar"))


class RemoveItemForm(FlaskForm):
    item = HiddenField(validators=[DataRequired()])
    submit = SubmitField(_l("Quitar"))


class FiscalForm(FlaskForm):
    """A customer's fiscal data (spaces.commerce.fiscal checks it against SAT's catalogues)."""

    rfc = StringField(_l("RFC"), validators=[Length(max=16)],
                      description=_l("12 caracteres (persona moral) o 13 (persona física)."))
    razon_social = StringField(
        _l("Nombre o razón social"), validators=[Length(max=300)],
        description=_l("Exactamente como en su Constancia de Situación Fiscal, sin el régimen "
                       "capital (sin «S.A. de C.V.»)."))
    regimen_fiscal = SelectField(_l("Régimen fiscal"), validate_choice=False)
    codigo_postal = StringField(_l("Código postal del domicilio fiscal"),
                                validators=[Length(max=5)])
    uso_cfdi = SelectField(_l("Uso del CFDI"), validate_choice=False)
    submit = SubmitField(_l("Guardar datos fiscales"))

    def fill_choices(self) -> None:
        """SAT's régimenes (saying for which persona) and the usos a storage service takes."""
        def who(r: catalogs.Regimen) -> str:
            if r.fisica and r.moral:
                return gettext("persona física o moral")
            return gettext("persona moral") if r.moral else gettext("persona física")

        self.regimen_fiscal.choices = [("", gettext("Elija su régimen fiscal"))] + [
            (r.code, f"{r.code} — {r.description} ({who(r)})")
            for r in catalogs.REGIMENES.values()]
        self.uso_cfdi.choices = [(c, f"{c} — {catalogs.USOS[c].description}")
                                 for c in catalogs.USOS_FOR_SERVICE]

    def prefill(self, data: Mapping[str, str]) -> None:
        """Fiscal data (spaces.commerce.fiscal.draft) in a form shown for the first time."""
        for key, value in data.items():
            getattr(self, key).data = value


class CheckoutForm(FiscalForm):
    contract_version = HiddenField(validators=[DataRequired()])
    invoice = BooleanField(_l("Quiero factura (CFDI 4.0) con estos datos fiscales"))
    accept = BooleanField(_l("He leído y acepto el contrato de servicio"),
                          validators=[DataRequired(_l("Debe aceptar el contrato para "
                                                      "continuar."))])
    submit = SubmitField(_l("Continuar al pago"))


class InvoiceCancelForm(FlaskForm):
    motivo = SelectField(_l("Motivo (SAT)"), validate_choice=False)
    submit = SubmitField(_l("Cancelar factura"))


class CardForm(FlaskForm):
    number = StringField(_l("Número de tarjeta"), validators=[DataRequired(), Length(max=23)])
    name = StringField(_l("Nombre en la tarjeta"), validators=[DataRequired(), Length(max=100)])
    expiry = StringField(_l("Vencimiento (MM/AA)"), validators=[DataRequired(), Length(max=7)])
    cvc = PasswordField(_l("CVC"), validators=[DataRequired(), Length(min=3, max=4)])
    submit = SubmitField(_l("Pagar"))


class AddMemberForm(FlaskForm):
    username = StringField(_l("Usuario"), validators=[DataRequired(), Length(max=64)])
    email = EmailField(_l("Correo (recibe el enlace para elegir contraseña)"),
                       validators=[DataRequired(), Length(max=254)])
    role = SelectField(_l("Rol"), choices=[("editor", _l("editor: lee y guarda")),
                                           ("reader", _l("lector: sólo lee")),
                                           ("admin", _l("administrador"))])
    submit = SubmitField(_l("Agregar usuario"))


class MemberActionForm(FlaskForm):
    username = HiddenField(validators=[DataRequired()])
    role = SelectField(_l("Rol"), choices=[("editor", _l("editor")), ("reader", _l("lector")),
                                           ("admin", _l("administrador"))], validate_choice=False)
    action = HiddenField(validators=[DataRequired()])
    submit = SubmitField(_l("Aplicar"))


class LockBreakForm(FlaskForm):
    token = HiddenField(validators=[DataRequired(), Length(max=128)])
    submit = SubmitField(_l("Quitar bloqueo"))


class OperatorSpaceForm(FlaskForm):
    action = HiddenField(validators=[DataRequired()])
    tier = SelectField(_l("Plan"), validate_choice=False)
    submit = SubmitField(_l("Aplicar"))


class ApiTokenForm(FlaskForm):
    name = StringField(_l("Nombre del token"), validators=[DataRequired(), Length(max=64)],
                       description=_l("Para qué o quién es (p. ej. «monitoreo» o «altas "
                                      "automáticas»); aparece en la bitácora como api:NOMBRE."))
    submit = SubmitField(_l("Crear token"))


class RevokeApiTokenForm(FlaskForm):
    name = HiddenField(validators=[DataRequired(), Length(max=64)])
    submit = SubmitField(_l("Revocar"))


def domain_errors(form: Any, checks: dict[str, Callable[[str], object]]) -> bool:
    """Run each field's own rule from :mod:`spaces` on every field WTForms found no
    fault with, and put what it says beside that field, so that a submit shows
    every error at once. True when no field has an error."""
    ok = True
    for name, check in checks.items():
        field = getattr(form, name)
        field.errors = list(field.errors)
        if not field.errors:
            try:
                check(field.data or "")
            except SpaceError as exc:
                field.errors.append(str(exc))
        ok = ok and not field.errors
    return ok
