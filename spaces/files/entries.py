"""What the file core answers with: the entry at a path (:class:`Entry`), the
outcome of a delete (:class:`DeleteResult`) and its two refusals of its own,
a full disk (:class:`DiskFull`, 507) and a body that ended short
(:class:`IncompleteUpload`, 400). Every other refusal is one of
:mod:`spaces.core.errors`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from spaces.core.errors import InvalidName, QuotaExceeded
from spaces.files.policy import Kept
from spaces.files.store import Info


class DiskFull(QuotaExceeded):
    """The server's disk (not the plan) ran out of room: also 507."""

    reason = "disk"

    def __init__(self, space: str) -> None:
        Exception.__init__(
            self,
            "El servidor no tiene espacio en disco para guardar este archivo; no se "
            "modificó nada. Avise a su proveedor del servicio.",
        )
        self.space, self.needed, self.available, self.quota = space, 0, 0, 0


class IncompleteUpload(InvalidName):
    """The body ended before its declared length: never committed (400)."""


@dataclass(frozen=True)
class DeleteResult:
    freed_bytes: int
    freed_files: int
    #: What the policies kept in place (protected CFDI; the folders leading
    #: to them stay too).
    kept: list[Kept]


@dataclass(frozen=True)
class Entry(Info):
    """What is at a path of the space (never a symlink): the store's :class:`Info`
    (size, dates, the opaque ETag) and the path it was found at."""

    path: Path
