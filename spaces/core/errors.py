"""Typed domain errors. Each carries a message a customer can read (Spanish)
and the HTTP status it means (``status``), the one mapping the web drive, the
portal and the WebDAV drive answer with. The WebDAV drive alone answers 405
instead of 409 for AlreadyExists (RFC 4918: MKCOL on a name that exists)."""

from __future__ import annotations

from spaces.core import formats


class SpaceError(Exception):
    """Base class: ``str(exc)`` is the Spanish message for the customer."""

    status = 403


class NotFound(SpaceError):
    status = 404


class AlreadyExists(SpaceError):
    status = 409


class NameClash(SpaceError):
    """A sibling already has a name Windows takes for the same one (it differs
    only in case or in the Unicode spelling of an accent)."""

    status = 409


class InvalidName(SpaceError):
    """A name Windows or the service cannot use."""

    status = 400


class Forbidden(SpaceError):
    """The action is not allowed for this user or this resource."""

    status = 403


class ReadOnlySpace(Forbidden):
    """The space is read-only (unpaid after its grace days, or set so by an
    operator) or suspended: it may be read and downloaded, never changed."""

    def __init__(self, status: str) -> None:
        self.space_status = status
        if status == "suspended":
            super().__init__(
                "El espacio está suspendido: no se puede guardar, cambiar, mover ni borrar "
                "nada. Comuníquese con su proveedor del servicio.")
        else:
            super().__init__(
                "El espacio está en modo de solo lectura: puede ver y descargar sus "
                "archivos, pero no guardar, cambiar, mover ni borrar nada. Para volver a "
                "escribir, renueve su plan en el portal.")


class QuotaExceeded(SpaceError):
    """The write does not fit in the space's plan.

    The message states the real figures: what the file (or the copy, or the
    restored item) needs in all, and what the plan has available for it
    (free room, plus what it replaces, minus nothing the write itself holds)."""

    status = 507
    #: The label of ``resguardo_quota_refusals_total`` (``disk``: the server's disk).
    reason = "quota"

    def __init__(self, space: str, needed: int, available: int, quota: int, *,
                 at_least: bool = False) -> None:
        self.space, self.needed, self.quota = space, needed, quota
        self.available = max(available, 0)
        need = ("al menos " if at_least else "") + formats.size(needed)
        figures = (f"el archivo necesita {need} y el plan tiene "
                   f"{formats.size(self.available)} disponibles de {formats.size(quota)}"
                   if needed > 0 else f"el plan de {formats.size(quota)} está lleno")
        super().__init__(
            f"Espacio insuficiente en '{space}': {figures}. Borre lo que ya no necesite "
            "(lo borrado deja de contar al instante) o cambie a un plan mayor."
        )


class EntryLimitReached(QuotaExceeded):
    """The space holds as many files and folders as its plan allows (its trash
    and earlier versions included): also 507."""

    reason = "entries"

    def __init__(self, space: str, limit: int, held: int) -> None:
        Exception.__init__(
            self,
            f"El espacio '{space}' llegó al límite de {limit:,} archivos y carpetas de su "
            "plan (cuentan también los que están en la papelera"
            + (f", {held:,} ahora" if held else "") + ", y las versiones anteriores). Borre "
            "lo que ya no necesite y vacíe la papelera, o cambie a un plan mayor.")
        self.space, self.needed, self.available, self.quota = space, 0, 0, 0


class UsageUnavailable(SpaceError):
    """The usage counters cannot be read or written: the write is refused."""

    status = 503

    def __init__(self, detail: str = "") -> None:
        self.detail = detail
        super().__init__(
            "No se pudo verificar el espacio disponible en este momento; "
            "por seguridad no se guardó nada. Intente de nuevo en unos segundos."
        )


class UserLimitReached(SpaceError):
    status = 403
