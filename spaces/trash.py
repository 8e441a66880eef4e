"""The trash bin of a space: deleted files and folders, restorable for a while.

Layout: ``<data_dir>/spaces/<name>/trash/<token>`` is one deleted file or folder
(renamed there in one atomic ``rename`` from ``files/``: same filesystem), with
a :class:`spaces.models.TrashItem` row saying where it was, when, by whom and
what it holds. The trash sits outside ``files/``, so the drive never lists it.

Accounting: what is in the trash still counts toward the space's usage (bytes
and entries), exactly like the file it was; a delete into the trash changes no
counter, and only erasing it (expiry, "empty trash", :func:`reclaim`) frees
room. ``resguardo quota recount`` measures ``files`` + ``trash`` + ``versions``.
A write that does not fit gets 507: the trash is never emptied to make room
behind the user's back; an admin frees space on purpose (:func:`reclaim`,
:func:`empty_trash`).

CFDI: a protected CFDI never reaches the trash (its delete is refused, or it
stays in place when its folder is deleted), so nothing here can destroy one.

Every function takes a :class:`spaces.storage.SpaceFiles` (one space, and the
actor in ``files.actor``), runs its change under the space's guard, and raises
the domain errors of :mod:`spaces.errors` (NotFound, Forbidden, QuotaExceeded).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from spaces.db import Database
from spaces.settings import Settings

if TYPE_CHECKING:
    from spaces.storage import SpaceFiles


@dataclass(frozen=True)
class TrashEntry:
    """One item of a space's trash, as the web drive shows it."""

    id: int
    #: Where it was ('/Clientes/factura.xlsx').
    path: str
    #: Its name (the last segment of ``path``).
    name: str
    is_dir: bool
    #: Bytes it holds (the whole tree for a folder).
    size: int
    #: Files and folders it holds (itself included).
    files: int
    trashed_at: datetime
    trashed_by: str | None
    #: When the sweep erases it (``trashed_at`` + ``[trash] days``).
    expires_at: datetime


@dataclass(frozen=True)
class Freed:
    """What an erase gave back to the space."""

    bytes: int
    files: int
    #: How many trash items and versions were erased.
    items: int


def list_trash(files: SpaceFiles) -> list[TrashEntry]:
    """The space's trash, newest first."""
    raise NotImplementedError


def restore_from_trash(files: SpaceFiles, item_id: int, by: str | None = None) -> str:
    """Put a trash item back where it was and return the path it now has.

    If that name is taken, the item comes back as "nombre (restaurado).ext"
    ("nombre (restaurado 2).ext", ...). Missing parent folders are created again
    (each counts as one entry; they are refused with 507 only if the space is
    over its quota). Restoring changes no byte counter (the item was counted in
    the trash). Raises NotFound if the item is not in this space's trash.
    """
    raise NotImplementedError


def delete_from_trash(files: SpaceFiles, item_id: int, by: str | None = None) -> Freed:
    """Erase one trash item for good (an admin's choice); returns what was freed."""
    raise NotImplementedError


def empty_trash(files: SpaceFiles, by: str | None = None) -> Freed:
    """Erase everything in the space's trash (an admin's choice)."""
    raise NotImplementedError


def reclaim(files: SpaceFiles, nbytes: int, by: str | None = None) -> Freed:
    """Free at least ``nbytes`` (if there is that much to free) by erasing the
    oldest file versions first, then the oldest trash items. Current files are
    never touched. Returns what was freed (possibly less than asked)."""
    raise NotImplementedError


def expire(settings: Settings, db: Database, now: datetime | None = None,
           *, older_than_days: int | None = None) -> Freed:
    """The sweep: in every space, erase trash items older than ``[trash] days``
    (or ``older_than_days``) and versions older than ``[versions] max_days``,
    through the one erase path. Safe to run twice."""
    raise NotImplementedError
