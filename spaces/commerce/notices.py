"""The e-mails Resguardo sends, in Spanish, and the portal paths their links use.

The portal registers its routes on exactly these paths, so a link built here
(by the portal, the payment webhook or the lifecycle command) always works.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from spaces.core import formats
from spaces.core.mail import Attachment, Mail

CONFIRM_PATH = "/cuenta/confirmar/"
RESET_PATH = "/cuenta/restablecer/"
EMAIL_CHANGE_PATH = "/cuenta/cambiar-correo/"
MEMBER_PASSWORD_PATH = "/acceso/"  # noqa: S105 - a URL path, not a secret
RENEW_PATH = "/planes"
DRIVE_PATH = "/dav/"

SIGNATURE = "\n\n— Resguardo, su unidad de red para archivos contables y CFDI\n"


@dataclass(frozen=True)
class Links:
    """Absolute URLs for e-mails, from the base URL customers use."""

    base_url: str

    def _u(self, path: str) -> str:
        return self.base_url.rstrip("/") + path

    def confirm(self, token: str) -> str:
        return self._u(CONFIRM_PATH + token)

    def reset(self, token: str) -> str:
        return self._u(RESET_PATH + token)

    def email_change(self, token: str) -> str:
        return self._u(EMAIL_CHANGE_PATH + token)

    def member_password(self, token: str) -> str:
        return self._u(MEMBER_PASSWORD_PATH + token)

    def drive(self, space: str) -> str:
        return self._u(f"{DRIVE_PATH}{space}/")

    def renew(self) -> str:
        return self._u(RENEW_PATH)

    def home(self) -> str:
        return self._u("/")


def confirm_email(to: str, username: str, link: str, hours: int) -> Mail:
    return Mail(to, "Confirme su correo en Resguardo", (
        f"Hola, {username}:\n\n"
        "Gracias por abrir su cuenta en Resguardo. Para confirmar este correo, abra el "
        f"enlace (funciona una vez y durante {hours} horas):\n\n{link}\n\n"
        "Si usted no abrió la cuenta, ignore este mensaje." + SIGNATURE))


def already_registered(to: str, login_link: str, reset_link: str) -> Mail:
    return Mail(to, "Ya tiene una cuenta en Resguardo", (
        "Alguien (quizás usted) intentó abrir una cuenta nueva con este correo, pero ya "
        f"tiene una. Puede entrar en:\n\n{login_link}\n\nSi olvidó su contraseña, "
        f"restablézcala aquí:\n\n{reset_link}" + SIGNATURE))


def username_taken(to: str, username: str, signup_link: str) -> Mail:
    return Mail(to, f"El usuario «{username}» no está disponible en Resguardo", (
        f"Alguien (quizás usted) intentó abrir una cuenta con este correo y el usuario "
        f"«{username}», que ya está en uso. No se creó ninguna cuenta. Puede registrarse "
        f"con otro usuario (también nombrará su espacio) aquí:\n\n{signup_link}"
        + SIGNATURE))


def no_account(to: str, signup_link: str) -> Mail:
    return Mail(to, "Restablecer su contraseña de Resguardo", (
        "Alguien (quizás usted) pidió restablecer la contraseña de la cuenta de este "
        "correo, pero ninguna cuenta de Resguardo lo usa. Si tiene una con otro correo, "
        f"pida el enlace con ese. Para abrir una cuenta:\n\n{signup_link}\n\n"
        "Si usted no lo pidió, ignore este mensaje." + SIGNATURE))


def reset_password(to: str, username: str, link: str, hours: int) -> Mail:
    return Mail(to, "Restablecer su contraseña de Resguardo", (
        f"Hola, {username}:\n\nPara elegir una contraseña nueva abra este enlace (funciona "
        f"una vez y durante {hours} horas):\n\n{link}\n\n"
        "Si usted no lo pidió, ignore este mensaje: su contraseña no cambia." + SIGNATURE))


def email_change(to: str, username: str, link: str, hours: int) -> Mail:
    return Mail(to, "Confirme su nuevo correo en Resguardo", (
        f"Hola, {username}:\n\nPara usar este correo en su cuenta de Resguardo abra el "
        f"enlace (funciona una vez y durante {hours} horas):\n\n{link}" + SIGNATURE))


def access_data(to: str, *, space: str, tier: str, quota_bytes: int, drive_url: str,
                user: str, link: str, hours: int, paid_until: date | None,
                changed: bool = False) -> Mail:
    """The access data of a space: name, drive URL, user and a set-password link
    (never a password). ``changed``: an existing space got a new tier or period."""
    until = (f"Pagado hasta: {formats.day(paid_until)}\n" if paid_until
             else "Vigencia: sin vencimiento (plan gratuito)\n")
    opening = ("Recibimos su pago: su espacio ya tiene el plan nuevo. Sus archivos y "
               "usuarios no cambiaron." if changed else "Su espacio de Resguardo está listo.")
    return Mail(to, f"Datos de acceso a su espacio {space} ({tier})", (
        f"{opening}\n\n"
        f"Espacio: {space}\n"
        f"Plan: {tier} ({formats.size(quota_bytes)})\n"
        f"{until}"
        f"Dirección de la unidad: {drive_url}\n"
        f"Usuario: {user}\n\n"
        "Para elegir (o cambiar) su contraseña abra este enlace (funciona una vez y "
        f"durante {hours} horas):\n\n{link}\n\n"
        "Conectar en Windows: Este equipo → Conectar a unidad de red → carpeta "
        f"{drive_url} → marque «Conectar con otras credenciales» y escriba su usuario y "
        "contraseña." + SIGNATURE))


def plan_changed(to: str, *, space: str, tier: str, quota_bytes: int, drive_url: str,
                 paid_until: date | None) -> Mail:
    until = f"{formats.day(paid_until)}" if paid_until else "sin vencimiento"
    return Mail(to, f"Su espacio {space} ahora tiene el plan {tier}", (
        f"Recibimos su pago. El espacio {space} tiene ahora el plan {tier} "
        f"({formats.size(quota_bytes)}), pagado hasta el {until}.\n\n"
        f"Sus archivos y usuarios no cambiaron. Unidad: {drive_url}" + SIGNATURE))


def member_invite(to: str, *, space: str, user: str, drive_url: str, link: str,
                  hours: int) -> Mail:
    return Mail(to, f"Su acceso a la unidad {space} de Resguardo", (
        f"Le dieron acceso a la unidad de red «{space}».\n\n"
        f"Dirección de la unidad: {drive_url}\nUsuario: {user}\n\n"
        f"Para elegir su contraseña abra este enlace (funciona una vez y durante "
        f"{hours} horas):\n\n{link}" + SIGNATURE))


def renewal_reminder(to: str, *, space: str, tier: str, paid_until: date, days: int,
                     renew_link: str) -> Mail:
    when = "mañana" if days == 1 else f"en {days} días"
    return Mail(to, f"Su espacio {space} vence {when}", (
        f"Su espacio {space} (plan {tier}) está pagado hasta el {formats.day(paid_until)}, "
        f"es decir, vence {when}.\n\nRenueve en {renew_link} para seguir guardando "
        "archivos sin interrupción. Si no renueva, después del periodo de gracia el "
        "espacio quedará en solo lectura: podrá ver y descargar todo, nada se borra."
        + SIGNATURE))


def space_read_only(to: str, *, space: str, paid_until: date, renew_link: str) -> Mail:
    return Mail(to, f"Su espacio {space} quedó en solo lectura", (
        f"El espacio {space} venció el {formats.day(paid_until)} y terminó el periodo de "
        "gracia, así que quedó en solo lectura: puede abrir y descargar sus archivos, "
        f"pero no guardar nuevos. No se borró nada.\n\nRenueve en {renew_link} y el "
        "espacio vuelve a funcionar al instante." + SIGNATURE))


def invoice_issued(to: str, *, reference: str, name: str, uuid: str, rfc: str, total: str,
                   sandbox: bool, attachments: tuple[Attachment, ...]) -> Mail:
    """A factura, its XML and PDF attached."""
    warning = ("\n\nATENCIÓN: esta factura la timbró el PAC de pruebas (sandbox) de "
               "Resguardo: NO tiene validez fiscal ni se envió al SAT." if sandbox else "")
    return Mail(to, f"Su factura {name} del pedido {reference}", (
        f"Adjuntamos la factura (CFDI 4.0) de su pedido {reference}: el XML, que es el "
        "comprobante fiscal, y su representación impresa en PDF.\n\n"
        f"Factura: {name}\nFolio fiscal (UUID): {uuid}\nRFC receptor: {rfc}\n"
        f"Total: {total} MXN\n\n"
        "Puede verificarla en https://verificacfdi.facturaelectronica.sat.gob.mx/ y "
        "descargarla de nuevo en la página del pedido." + warning + SIGNATURE),
        attachments)
