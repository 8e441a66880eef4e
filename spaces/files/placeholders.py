"""A LOCK's empty file: the rows that remember it until its first write.

A LOCK on a new name creates an empty file (RFC 4918 §9.10.4) and records it
as a :class:`~spaces.core.models.LockPlaceholder` (its inode and the lock it is
for): :meth:`spaces.files.storage.SpaceFiles.create_empty` adds the row,
:meth:`spaces.files.storage.SpaceFiles.drop_placeholder` takes it when the
write is refused or the lock ends, and the drive's sweep reads
:func:`lock_placeholders` to remove those whose lock is gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, insert, select

from spaces.core.db import Database
from spaces.core.models import LockPlaceholder, Space

#: Built once: a LOCK on a new name records its placeholder, a failed write takes it.
ADD_PLACEHOLDER = insert(LockPlaceholder)
TAKE_PLACEHOLDERS = (delete(LockPlaceholder)
                     .where(LockPlaceholder.space_id == bindparam("space_id"),
                            LockPlaceholder.path == bindparam("path"))
                     .returning(LockPlaceholder.inode))


@dataclass(frozen=True)
class Placeholder:
    """A LOCK's empty file, not yet written (see SpaceFiles.create_empty)."""

    space_id: int
    space_name: str
    path: str
    lock_root: str
    created_at: Any


_PLACEHOLDERS = (select(LockPlaceholder.space_id, Space.name, LockPlaceholder.path,
                        LockPlaceholder.lock_root, LockPlaceholder.created_at)
                 .join(Space, Space.id == LockPlaceholder.space_id)
                 .where(LockPlaceholder.created_at < bindparam("before")))


def lock_placeholders(db: Database, before: Any) -> list[Placeholder]:
    """Every space's lock placeholders created before ``before`` (UTC, naive)."""
    with db.engine.connect() as c:
        return [Placeholder(*r) for r in c.execute(_PLACEHOLDERS, {"before": before}).all()]

