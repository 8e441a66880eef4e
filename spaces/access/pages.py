"""Paged reads for the operator API: spaces, the members of a space and its CFDI
index, each in a stable order with ``limit``/``offset`` and the total count.

The order is total (a unique column breaks ties), so walking the pages with
``offset += limit`` sees every row once while nothing is added or removed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy import Select, func, or_, select

from spaces.access.service import MemberInfo, SpaceInfo
from spaces.cfdi.retention import PROTECTED_CATEGORIES
from spaces.core.db import Database
from spaces.core.models import CfdiDocument, Member, Space

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int

    @property
    def next_offset(self) -> int | None:
        """Offset of the next page, or None on the last one."""
        nxt = self.offset + len(self.items)
        return nxt if self.items and nxt < self.total else None


def _count(db: Database, stmt: Select[int]) -> int:
    with db.engine.connect() as c:
        return int(c.scalar(stmt) or 0)


def spaces(db: Database, limit: int, offset: int) -> Page[SpaceInfo]:
    """Spaces by name."""
    total = _count(db, select(func.count()).select_from(Space))
    with db.session() as s:
        rows = s.scalars(select(Space).order_by(Space.name).limit(limit).offset(offset))
        return Page([SpaceInfo.of(x) for x in rows], total, limit, offset)


def member_count(db: Database, space_id: int) -> int:
    return _count(db, select(func.count()).select_from(Member)
                  .where(Member.space_id == space_id))


def members(db: Database, space_id: int, limit: int, offset: int) -> Page[MemberInfo]:
    """Members of a space, oldest first (the order the user limit admits them in)."""
    total = member_count(db, space_id)
    with db.session() as s:
        rows = s.scalars(select(Member).where(Member.space_id == space_id)
                         .order_by(Member.created_at, Member.id).limit(limit).offset(offset))
        return Page([MemberInfo(m.id, m.space_id, m.username, m.role) for m in rows],
                    total, limit, offset)


@dataclass(frozen=True)
class CfdiFilter:
    """The API's CFDI search: the same meaning as in ``cfdi_index.search`` (stamped
    documents and acuses; UUID exact; RFC as issuer or receiver; dates inclusive)."""

    uuid: str | None = None
    rfc: str | None = None
    date_from: str | None = None
    date_to: str | None = None


def cfdi(db: Database, space_id: int, f: CfdiFilter, limit: int, offset: int
         ) -> Page[CfdiDocument]:
    """Indexed CFDI of a space by date, then id. The rows are detached snapshots."""
    where = [CfdiDocument.space_id == space_id,
             CfdiDocument.category.in_(PROTECTED_CATEGORIES)]
    if f.uuid:
        where.append(CfdiDocument.uuid == f.uuid.strip().upper())
    if f.rfc:
        r = f.rfc.strip().upper()
        where.append(or_(CfdiDocument.emisor_rfc == r, CfdiDocument.receptor_rfc == r))
    if f.date_from:
        where.append(CfdiDocument.fecha >= f.date_from)
    if f.date_to:
        where.append(CfdiDocument.fecha <= f.date_to + "T23:59:59")
    total = _count(db, select(func.count()).select_from(CfdiDocument).where(*where))
    with db.session() as s:
        rows = list(s.scalars(select(CfdiDocument).where(*where)
                              .order_by(CfdiDocument.fecha, CfdiDocument.id)
                              .limit(limit).offset(offset)))
    return Page(rows, total, limit, offset)
