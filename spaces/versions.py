"""Earlier versions of the files of a space.

When a file's content is replaced — a PUT over it, a COPY or MOVE onto it, or
Office's save-by-rename (the document renamed to a temporary name, the new one
renamed into place, the temporary deleted) — the previous content is kept in
``<data_dir>/spaces/<name>/versions/<token>`` with a
:class:`spaces.models.FileVersion` row naming the file it belongs to. At most
``[versions] keep`` versions per file are kept, none older than
``[versions] max_days``; empty files leave no version.

Versions count toward the space's usage; an overwrite therefore needs room
for the whole new content (507 otherwise, the old content untouched). They are
the first thing :func:`spaces.trash.reclaim` erases when an admin frees space.
A version follows its file when the file is renamed or moved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from spaces.storage import SpaceFiles
    from spaces.trash import Freed


@dataclass(frozen=True)
class VersionEntry:
    """One earlier version of a file."""

    id: int
    #: The file it is a version of ('/Clientes/libro.xlsx').
    path: str
    size: int
    #: The content's modification time (seconds since the epoch).
    mtime: float
    #: When it was replaced (became a version).
    created_at: datetime
    #: Who replaced it.
    created_by: str | None


def list_versions(files: SpaceFiles, rel: str) -> list[VersionEntry]:
    """The versions of the file at ``rel``, newest first (empty if none)."""
    raise NotImplementedError


def get_version(files: SpaceFiles, version_id: int) -> VersionEntry:
    """One version of this space (NotFound otherwise)."""
    raise NotImplementedError


def open_version(files: SpaceFiles, version_id: int) -> tuple[VersionEntry, BinaryIO]:
    """The version and its content opened for reading (the caller closes it).
    Raises NotFound if it is not a version of this space."""
    raise NotImplementedError


def restore_version(files: SpaceFiles, version_id: int, by: str | None = None) -> None:
    """Make the version the current content of its file again. The current
    content is kept as a version first (restoring is itself undoable), so this
    needs room for one more copy: QuotaExceeded (507) otherwise, nothing
    changed. A missing file is recreated (its folder must exist). Forbidden if
    the current file is a protected CFDI."""
    raise NotImplementedError


def delete_version(files: SpaceFiles, version_id: int, by: str | None = None) -> Freed:
    """Erase one version for good (an admin's choice)."""
    raise NotImplementedError
