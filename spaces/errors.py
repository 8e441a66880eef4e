"""Typed domain errors. Each carries a message a customer can read (Spanish);
the drive and the portal map them to HTTP statuses at their edge."""

from __future__ import annotations


class SpaceError(Exception):
    """Base class: ``str(exc)`` is the Spanish message for the customer."""


class NotFound(SpaceError):
    pass


class AlreadyExists(SpaceError):
    pass


class InvalidName(SpaceError):
    """A name Windows or the service cannot use (maps to 400)."""


class Forbidden(SpaceError):
    """The action is not allowed for this user or this resource (maps to 403)."""


class QuotaExceeded(SpaceError):
    """The write does not fit in the space (maps to 507)."""

    def __init__(self, space: str, used: int, quota: int, requested: int) -> None:
        self.space, self.used, self.quota, self.requested = space, used, quota, requested
        from spaces.plans import format_bytes

        available = max(quota - used, 0)
        super().__init__(
            f"Espacio insuficiente en '{space}': se necesitan {format_bytes(requested)} "
            f"y quedan {format_bytes(available)} libres de {format_bytes(quota)}. "
            "Libere espacio o cambie a un plan mayor."
        )


class UsageUnavailable(SpaceError):
    """The usage counters cannot be read or written: the write is refused (503)."""

    def __init__(self, detail: str = "") -> None:
        self.detail = detail
        super().__init__(
            "No se pudo verificar el espacio disponible en este momento; "
            "por seguridad no se guardó nada. Intente de nuevo en unos segundos."
        )


class UserLimitReached(SpaceError):
    pass
