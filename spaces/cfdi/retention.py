"""Retention decisions for CFDI: the only place that says what is protected.

A stamped CFDI (and an acuse de cancelación) is write-once from the moment the
server stores it until it is *released*: its period is the space's tier
``cfdi_years`` counted from the ingest time the server recorded (never from the
file's modified time, which clients set). Upgrading the tier extends the
period of what is already stored; a downgrade or a lapse never shortens it.
A legal hold keeps documents protected past their period. Only the sweep
(:func:`spaces.jobs.sweeps.retention_sweep`, through :func:`mark_released`)
releases a document, and only once its period has ended and no hold covers
it, so a clock or a sweep that never runs errs on the side of keeping.

:class:`RetentionPolicy` is how the file core asks: the first of the policies
every :class:`~spaces.files.storage.SpaceFiles` runs
(:func:`spaces.access.files.space_files`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, and_, bindparam, or_, select, update
from sqlalchemy.orm import Session

from spaces.core import audit, formats, metrics, plans
from spaces.core.db import Database, affected, below, below_params, path_move_params, path_mover
from spaces.core.errors import Forbidden, NotFound
from spaces.core.models import CfdiDocument, CfdiHold, Space
from spaces.core.settings import Settings
from spaces.files.names import canonical_rel
from spaces.files.policy import Folder, Kept, Policy

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
            why = f"está resguardado hasta el {formats.day(self.until)}"
        else:
            why = "está resguardado"
        return (f"{what} ({self.path}) {why}: no se puede borrar, sobrescribir ni sacar del "
                "espacio. Sí puede renombrarlo o moverlo a otra carpeta del espacio.")



def active_holds(s, space_id: int) -> list[str]:  # type: ignore[no-untyped-def]
    """The paths of the space's legal holds not lifted (``s``: a session)."""
    return list(s.scalars(select(CfdiHold.path).where(
        CfdiHold.space_id == space_id, CfdiHold.lifted_at.is_(None))))


def covered(path: str, holds: list[str]) -> bool:
    """Whether one of ``holds`` (paths) covers ``path``."""
    for h in holds:
        h = h.rstrip("/")
        if h in ("", "/") or path == h or path.startswith(h + "/"):
            return True
    return False


def _protected_statement(*, whole_space: bool) -> Select[*tuple[Any, ...]]:
    """Every write and delete asks this: built once, so SQLAlchemy reuses it."""
    doc = CfdiDocument
    where = below(doc.path) if whole_space else or_(doc.path == bindparam("rel"),
                                                    below(doc.path))
    return (select(doc.path, doc.uuid, doc.protected_until, doc.released_at)
            .where(doc.space_id == bindparam("space_id"),
                   doc.category.in_(PROTECTED_CATEGORIES), where))


_PROTECTED_IN_SPACE = _protected_statement(whole_space=True)
_PROTECTED_AT_OR_BELOW = _protected_statement(whole_space=False)


def protected_under(db: Database, space_id: int, rel: str) -> list[Protection]:
    """Protected documents at ``rel`` or below it (``rel`` a file or a folder)."""
    rel = "/" + rel.strip("/")
    stmt = _PROTECTED_IN_SPACE if rel == "/" else _PROTECTED_AT_OR_BELOW
    with db.engine.connect() as c:  # a plain connection: most writes find nothing
        rows = c.execute(stmt, {"space_id": space_id, "rel": rel,
                                **below_params(rel)}).all()
    if not rows:
        return []
    with db.session() as s:
        holds = active_holds(s, space_id)
    out = []
    for path, uuid, until, released in rows:
        held = covered(path, holds)
        if held or released is None:
            out.append(Protection(path, uuid, until, held))
    return out


def check_writable(db: Database, space_id: int, rel: str) -> None:
    """Raise Forbidden (403, Spanish, with the date) if ``rel`` is a protected document."""
    found = [p for p in protected_under(db, space_id, rel) if p.path == "/" + rel.strip("/")]
    if found:
        log.info("retention refused: space=%s path=%s until=%s held=%s", space_id,
                 found[0].path, found[0].until, found[0].held)
        metrics.RETENTION_PROTECTIONS.inc()
        raise Forbidden(found[0].message())


def extend_for_tier(settings: Settings, db: Database, space_id: int, tier: str) -> int:
    """After a tier change: documents not yet released get at least the new
    period; nothing is ever shortened. Returns how many were extended."""
    with db.session() as s:
        return extend_in_session(s, settings, space_id, tier)


def extend_in_session(s: Session, settings: Settings, space_id: int, tier: str) -> int:
    """:func:`extend_for_tier` inside the caller's transaction (a paid upgrade
    changes the tier and extends the protection in one commit)."""
    years = years_for(settings, tier)
    changed = 0
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


@dataclass(frozen=True)
class CfdiHoldInfo:
    """A hold just placed: its id and the path it covers (the space's spelling)."""

    id: int
    path: str


def place_hold(db: Database, space_name: str, path: str, by: str, reason: str = "",
               *, actor: audit.Actor | None = None,
               settings: Settings | None = None) -> CfdiHoldInfo:
    """Put a legal hold on a document, a folder or ("/") the whole space. The
    path is normalised like the drive's (NFC; InvalidName for '..'). With
    ``settings`` it is also looked up in the space as an operator types it:
    a name in another case or accent spelling than the space's is held under
    the space's spelling (a hold compares paths exactly, so the typed one
    would cover nothing), and a path that does not exist is refused
    (NotFound): a hold on nothing protects nothing. Audited (``hold_placed``)
    in the same transaction; ``actor`` defaults to ``by``."""
    held = canonical_rel(path)
    if settings is not None:
        from spaces.files.layout import space_dir
        from spaces.files.names import resolve_spelling
        from spaces.files.store import store_for

        found = resolve_spelling(store_for(settings),
                                 space_dir(settings, space_name.lower()) / "files", held)
        if found is None:
            raise NotFound(f"No existe «{held}» en el espacio '{space_name}': una retención "
                           "legal sobre algo que no existe no protege nada; revise la ruta.")
        held = found
    with db.session() as s:
        space = s.scalar(select(Space).where(Space.name == space_name.lower()))
        if space is None:
            raise NotFound(f"No existe el espacio '{space_name}'.")
        hold = CfdiHold(space_id=space.id, path=held, reason=reason,
                        placed_by=by)
        s.add(hold)
        s.flush()
        audit.record(s, space.id, audit.Action.HOLD_PLACED,
                     actor=actor or audit.Actor(by), space_name=space.name, path=hold.path,
                     detail=reason or None)
        log.info("hold placed: space=%s path=%s by=%s", space_name, hold.path, by)
        return CfdiHoldInfo(hold.id, hold.path)


def lift_hold(db: Database, space_name: str, path: str, by: str,
              *, actor: audit.Actor | None = None) -> int:
    """Lift every active hold on exactly ``path`` (as the drive spells it: NFC);
    returns how many. Audited (``hold_lifted``) in the same transaction when one
    was lifted."""
    path = canonical_rel(path)
    with db.session() as s:
        space = s.scalar(select(Space).where(Space.name == space_name.lower()))
        if space is None:
            raise NotFound(f"No existe el espacio '{space_name}'.")
        result = s.execute(update(CfdiHold).where(
            CfdiHold.space_id == space.id, CfdiHold.path == path,
            CfdiHold.lifted_at.is_(None)).values(lifted_at=now_utc(), lifted_by=by))
        n = affected(result)
        if n:
            audit.record(s, space.id, audit.Action.HOLD_LIFTED,
                         actor=actor or audit.Actor(by), space_name=space.name,
                         path=path)
        log.info("hold lifted: space=%s path=%s by=%s", space_name, path, by)
        return n


#: Documents at or below a path (released or not: a hold protects them anyway).
_DOCUMENTS_AT_OR_BELOW = (
    select(CfdiDocument.path, CfdiDocument.uuid)
    .where(CfdiDocument.space_id == bindparam("space_id"),
           CfdiDocument.category.in_(PROTECTED_CATEGORIES),
           or_(CfdiDocument.path == bindparam("rel"), below(CfdiDocument.path)))
    .limit(1))


def check_may_move(db: Database, space_id: int, src: str, dst: str) -> None:
    """Raise Forbidden if renaming ``src`` to ``dst`` takes a document out of a
    legal hold that covers it: a hold on a folder keeps its documents in that
    folder (they may be renamed and moved within it). Holds on ``src`` itself
    or below it move with it (:func:`moved`), and one on the whole space
    covers every destination."""
    src, dst = "/" + src.strip("/"), "/" + dst.strip("/")
    with db.session() as s:
        holds = active_holds(s, space_id)
    left = [h for h in holds
            if h.rstrip("/") != src and covered(src, [h]) and not covered(dst, [h])]
    if not left:
        return
    with db.engine.connect() as c:
        doc = c.execute(_DOCUMENTS_AT_OR_BELOW, {"space_id": space_id, "rel": src,
                                                 **below_params(src)}).first()
    if doc is None:
        return
    log.info("retention refused move out of a hold: space=%s path=%s hold=%s dest=%s",
             space_id, doc.path, left[0], dst)
    metrics.RETENTION_PROTECTIONS.inc()
    what = f"El CFDI {doc.uuid}" if doc.uuid else "Este CFDI"
    raise Forbidden(f"{what} ({doc.path}) está bajo retención legal en {left[0]}: puede "
                    f"renombrarlo o moverlo dentro de {left[0]}, pero no sacarlo de ahí.")


#: Every MOVE runs them: built once.
_MOVE_PATHS = tuple(path_mover(m, m.space_id == bindparam("sid"))
                    for m in (CfdiDocument, CfdiHold))


def moved(db: Database, space_id: int, src: str, dst: str) -> None:
    """A file or folder was renamed inside the space: index and holds follow it."""
    src, dst = "/" + src.strip("/"), "/" + dst.strip("/")
    params = {"sid": space_id, **path_move_params(src, dst)}
    with db.engine.begin() as c:
        for stmt in _MOVE_PATHS:
            c.execute(stmt, params)


class RetentionPolicy(Policy):
    """Retention in the file core: a protected CFDI is never overwritten,
    deleted or replaced, and never leaves a legal hold (Forbidden, 403, with
    the date); a folder's delete leaves its protected CFDI in place; a rename
    takes the index rows and holds along."""

    def before_write(self, files: Folder, rel: str) -> None:
        check_writable(files.db, files.space_id, rel)

    def before_delete(self, files: Folder, rel: str, *, is_dir: bool) -> list[Kept]:
        protections = protected_under(files.db, files.space_id, rel)
        if not is_dir and protections:
            metrics.RETENTION_PROTECTIONS.inc()
            log.info("retention refused delete: space=%s path=%s", files.space_name, rel)
            raise Forbidden(protections[0].message())
        return list(protections)

    def before_replace(self, files: Folder, rel: str) -> None:
        """A file, or a folder and everything below it, that holds a protected
        CFDI or a document under a legal hold is never replaced by a MOVE or
        COPY."""
        protections = protected_under(files.db, files.space_id, rel)
        if protections:
            metrics.RETENTION_PROTECTIONS.inc()
            log.info("retention refused replace: space=%s path=%s", files.space_name,
                     protections[0].path)
            raise Forbidden(protections[0].message())

    def before_move(self, files: Folder, src: str, dst: str) -> None:
        check_may_move(files.db, files.space_id, src, dst)

    def after_move(self, files: Folder, src: str, dst: str) -> None:
        moved(files.db, files.space_id, src, dst)


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
                holds[space_id] = active_holds(s, space_id)
            if not covered(path, holds[space_id]):
                out.append((space_id, name, doc_id, path, uuid))
        return out


def mark_released(db: Database, doc_id: int, now: datetime) -> None:
    """End a document's protection, with its ``cfdi_released`` audit record in
    the same transaction (no release without its record)."""
    with db.session() as s:
        doc = s.get(CfdiDocument, doc_id)
        if doc is None or doc.released_at is not None:
            return
        s.execute(update(CfdiDocument).where(CfdiDocument.id == doc_id)
                  .values(released_at=now))
        audit.record(s, doc.space_id, audit.Action.CFDI_RELEASED, actor=audit.SYSTEM,
                     path=doc.path, size=doc.size,
                     detail=f"UUID {doc.uuid or '-'}; resguardo terminado "
                            f"{doc.protected_until:%Y-%m-%d}" if doc.protected_until
                     else f"UUID {doc.uuid or '-'}")
