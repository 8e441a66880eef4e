"""Retention decisions for CFDI: the only place that says what is protected.

A stamped CFDI (and an acuse de cancelación) is write-once from the moment the
server stores it until it is *released*: its period is the space's tier
``cfdi_years`` counted from the ingest time the server recorded (never from the
file's modified time, which clients set). Upgrading the tier extends the
period of what is already stored; a downgrade or a lapse never shortens it.
A legal hold keeps documents protected past their period. Only
:func:`sweep` releases a document, and only once its period has ended and no
hold covers it, so a clock or a sweep that never runs errs on the side of
keeping.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import and_, or_, select, update

from spaces import plans
from spaces.db import Database
from spaces.errors import Forbidden, NotFound
from spaces.models import CfdiDocument, CfdiHold, Space
from spaces.settings import Settings

log = logging.getLogger(__name__)

PROTECTED_CATEGORIES = ("index", "acuse")


def now_utc() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def add_years(moment: datetime, years: int) -> datetime:
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:  # 29 February
        return moment.replace(year=moment.year + years, day=28)


def years_for(settings: Settings, tier: str) -> int:
    return plans.get_tier(settings, tier).cfdi_years


@dataclass(frozen=True)
class Protection:
    path: str
    uuid: str | None
    until: datetime | None
    held: bool

    def message(self) -> str:
        what = f"El CFDI {self.uuid}" if self.uuid else "Este CFDI"
        if self.held:
            why = "está bajo retención legal"
        elif self.until is not None:
            why = f"está resguardado hasta el {self.until:%d/%m/%Y}"
        else:
            why = "está resguardado"
        return (f"{what} ({self.path}) {why}: no se puede borrar, sobrescribir ni sacar del "
                "espacio. Sí puede renombrarlo o moverlo a otra carpeta del espacio.")


def _like_prefix(path: str) -> str:
    base = path.rstrip("/") + "/"
    return base.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _active_holds(s, space_id: int) -> list[str]:  # type: ignore[no-untyped-def]
    return list(s.scalars(select(CfdiHold.path).where(
        CfdiHold.space_id == space_id, CfdiHold.lifted_at.is_(None))))


def _covered(path: str, holds: list[str]) -> bool:
    for h in holds:
        h = h.rstrip("/")
        if h in ("", "/") or path == h or path.startswith(h + "/"):
            return True
    return False


def protected_under(db: Database, space_id: int, rel: str) -> list[Protection]:
    """Protected documents at ``rel`` or below it (``rel`` a file or a folder)."""
    rel = "/" + rel.strip("/")
    with db.session() as s:
        cond = CfdiDocument.path == rel
        if rel != "/":
            cond = or_(cond, CfdiDocument.path.like(_like_prefix(rel), escape="\\"))
        else:
            cond = CfdiDocument.path.like("/%")
        rows = s.execute(select(CfdiDocument.path, CfdiDocument.uuid,
                                CfdiDocument.protected_until, CfdiDocument.released_at)
                         .where(CfdiDocument.space_id == space_id,
                                CfdiDocument.category.in_(PROTECTED_CATEGORIES),
                                CfdiDocument.duplicate_of.is_(None), cond)).all()
        if not rows:
            return []
        holds = _active_holds(s, space_id)
    out = []
    for path, uuid, until, released in rows:
        held = _covered(path, holds)
        if held or released is None:
            out.append(Protection(path, uuid, until, held))
    return out


def check_writable(db: Database, space_id: int, rel: str) -> None:
    """Raise Forbidden (403, Spanish, with the date) if ``rel`` is a protected document."""
    found = [p for p in protected_under(db, space_id, rel) if p.path == "/" + rel.strip("/")]
    if found:
        log.info("retention refused: space=%s path=%s until=%s held=%s", space_id,
                 found[0].path, found[0].until, found[0].held)
        raise Forbidden(found[0].message())


def extend_for_tier(settings: Settings, db: Database, space_id: int, tier: str) -> int:
    """After a tier change: documents not yet released get at least the new
    period; nothing is ever shortened. Returns how many were extended."""
    years = years_for(settings, tier)
    changed = 0
    with db.session() as s:
        docs = s.scalars(select(CfdiDocument).where(
            CfdiDocument.space_id == space_id,
            CfdiDocument.category.in_(PROTECTED_CATEGORIES),
            CfdiDocument.released_at.is_(None)))
        for d in docs:
            candidate = add_years(d.ingested_at, years)
            if d.protected_until is None or candidate > d.protected_until:
                d.protected_until = candidate
                changed += 1
    return changed


def place_hold(db: Database, space_name: str, path: str, by: str, reason: str = "") -> int:
    """Put a legal hold on a document, a folder or ("/") the whole space."""
    with db.session() as s:
        space = s.scalar(select(Space).where(Space.name == space_name.lower()))
        if space is None:
            raise NotFound(f"No existe el espacio '{space_name}'.")
        hold = CfdiHold(space_id=space.id, path="/" + path.strip("/"), reason=reason,
                        placed_by=by)
        s.add(hold)
        s.flush()
        log.info("hold placed: space=%s path=%s by=%s", space_name, hold.path, by)
        return hold.id


def lift_hold(db: Database, space_name: str, path: str, by: str) -> int:
    """Lift every active hold on exactly ``path``; returns how many."""
    with db.session() as s:
        space = s.scalar(select(Space).where(Space.name == space_name.lower()))
        if space is None:
            raise NotFound(f"No existe el espacio '{space_name}'.")
        result = s.execute(update(CfdiHold).where(
            CfdiHold.space_id == space.id, CfdiHold.path == "/" + path.strip("/"),
            CfdiHold.lifted_at.is_(None)).values(lifted_at=now_utc(), lifted_by=by))
        log.info("hold lifted: space=%s path=%s by=%s", space_name, path, by)
        return int(result.rowcount or 0)


def moved(db: Database, space_id: int, src: str, dst: str) -> None:
    """A file or folder was renamed inside the space: index and holds follow it."""
    src, dst = "/" + src.strip("/"), "/" + dst.strip("/")
    with db.session() as s:
        for model in (CfdiDocument, CfdiHold):
            rows = s.scalars(select(model).where(
                model.space_id == space_id,
                or_(model.path == src, model.path.like(_like_prefix(src), escape="\\"))))
            for row in rows:
                row.path = dst + row.path[len(src):]


@dataclass(frozen=True)
class SweepAction:
    space: str
    path: str
    uuid: str | None
    action: str  # "released" or "purged"


def due_for_release(db: Database, now: datetime) -> list[tuple[int, str, int, str, str | None]]:
    """(space_id, space_name, doc_id, path, uuid) whose period ended and no hold covers."""
    with db.session() as s:
        rows = s.execute(
            select(CfdiDocument.space_id, Space.name, CfdiDocument.id, CfdiDocument.path,
                   CfdiDocument.uuid)
            .join(Space, Space.id == CfdiDocument.space_id)
            .where(and_(CfdiDocument.category.in_(PROTECTED_CATEGORIES),
                        CfdiDocument.released_at.is_(None),
                        CfdiDocument.protected_until.is_not(None),
                        CfdiDocument.protected_until <= now))).all()
        holds: dict[int, list[str]] = {}
        out = []
        for space_id, name, doc_id, path, uuid in rows:
            if space_id not in holds:
                holds[space_id] = _active_holds(s, space_id)
            if not _covered(path, holds[space_id]):
                out.append((space_id, name, doc_id, path, uuid))
        return out


def mark_released(db: Database, doc_id: int, now: datetime) -> None:
    with db.session() as s:
        s.execute(update(CfdiDocument).where(CfdiDocument.id == doc_id)
                  .values(released_at=now))


def sweep(settings: Settings, db: Database, now: datetime | None = None) -> list[SweepAction]:
    """Release every document whose period ended and that no hold covers.

    Safe to run twice: a released document is not released again. (Policy
    'release': the file just becomes deletable; nothing is deleted here.)
    """
    now = now or now_utc()
    actions = []
    for _space_id, name, doc_id, path, uuid in due_for_release(db, now):
        mark_released(db, doc_id, now)
        log.info("retention released: space=%s uuid=%s path=%s", name, uuid, path)
        actions.append(SweepAction(name, path, uuid, "released"))
    return actions
