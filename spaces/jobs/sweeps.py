"""The daily sweeps over every space, each through the space's file core
(:func:`spaces.access.files.space_files`, so every rule of a delete holds):

- :func:`expire_trash`: trash items and earlier versions past their days go
  for good (``resguardo trash purge``, and with the retention sweep);
- :func:`retention_sweep`: CFDI whose retention period ended and that no hold
  covers are released, or with the ``purge`` policy deleted once the owner
  has had both notices (``resguardo retention sweep``, a daily timer).

What is protected, and until when, is :mod:`spaces.cfdi.retention`'s to say;
this module only runs it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from spaces.access.files import space_files
from spaces.cfdi import retention
from spaces.core import audit, formats
from spaces.core.db import Database
from spaces.core.errors import SpaceError
from spaces.core.models import CfdiDocument, FileVersion, RenameTrail, Space, TrashItem, utcnow
from spaces.core.settings import Settings
from spaces.files import trash

log = logging.getLogger(__name__)


def expire_trash(settings: Settings, db: Database, now: datetime | None = None,
                 *, older_than_days: int | None = None) -> trash.Freed:
    """The sweep: in every space, erase trash items older than ``[trash] days``
    (or ``older_than_days``) and versions older than ``[versions] max_days``,
    through the one erase path. Safe to run twice."""
    now = now or utcnow()
    days = settings.trash.days if older_than_days is None else older_than_days
    trash_cutoff = now - timedelta(days=days)
    version_cutoff = now - timedelta(days=settings.versions.max_days)
    with db.session() as s:
        trows = list(s.scalars(select(TrashItem).where(TrashItem.trashed_at <= trash_cutoff)))
        vrows = list(s.scalars(select(FileVersion)
                               .where(FileVersion.created_at <= version_cutoff)))
        names = {sid: n for sid, n in s.execute(select(Space.id, Space.name))}
        s.execute(delete(RenameTrail).where(RenameTrail.created_at <= now - timedelta(days=1)))
    total = trash.Freed(0, 0, 0)
    for space_id in sorted({r.space_id for r in trows} | {v.space_id for v in vrows}):
        files = space_files(settings, db, space_id, names[space_id], actor=audit.SYSTEM)
        with files.guard():
            for v in (v for v in vrows if v.space_id == space_id):
                freed = trash.erase_version(files, v)
                files.record_event(audit.Action.VERSION_PURGE, v.path, size=freed.bytes,
                                   detail="vencida")
                total = total + freed
            for t in (t for t in trows if t.space_id == space_id):
                freed = trash.erase_item(files, t)
                files.record_event(audit.Action.TRASH_PURGE, t.path, size=freed.bytes,
                                   detail="vencido en la papelera")
                total = total + freed
        log.info("trash/versions expired: space=%s", files.space_name)
    return total


@dataclass(frozen=True)
class SweepAction:
    space: str
    path: str
    uuid: str | None
    action: str  # "released" or "purged"


def _owner_email(db: Database, space_id: int) -> str | None:
    """Who is told about purges: the owning portal account, else the space's owner."""
    with db.session() as s:
        space = s.get(Space, space_id)
        if space is None:
            return None
        account_id = getattr(space, "account_id", None)
        if account_id is not None:
            from spaces.core.models import Account

            account = s.get(Account, account_id)
            if account is not None and account.email:
                return str(account.email)
        return space.owner_email


def _notice(settings: Settings, to: str, space: str, docs: list[CfdiDocument], when: datetime,
            final: bool) -> None:
    from spaces.core.mail import Mail, Mailer

    base = settings.base_url()
    lines = [
        "Estimado cliente de Resguardo:",
        "",
        ("AVISO FINAL: " if final else "")
        + f"el periodo de resguardo de {len(docs)} CFDI de su espacio «{space}» termina y "
        f"se eliminarán a partir del {formats.day(when)}.",
        "",
        "Si necesita conservarlos, descárguelos antes de esa fecha desde el portal "
        f"({base}/espacios/{space}/cfdi) o desde su unidad de red, o pida una retención legal.",
        "",
    ]
    lines += [f"  {d.uuid or '-'}  {d.path}" for d in docs[:200]]
    if len(docs) > 200:
        lines.append(f"  … y {len(docs) - 200} más (véalos en el portal).")
    subject = ("Aviso final: " if final else "Aviso: ") + f"CFDI por eliminar en «{space}»"
    Mailer(settings).send(Mail(to=to, subject=subject, body="\n".join(lines) + "\n"))


def retention_sweep(settings: Settings, db: Database,
                    now: datetime | None = None) -> list[SweepAction]:
    """End the retention of documents whose period is over and that no hold covers.

    Policy ``release``: the document just becomes deletable. Policy ``purge``:
    the owner is e-mailed ``first_notice_days`` and ``final_notice_days``
    before, and only once both notices are that old is the file deleted —
    through the space's one delete path, so quota and index follow. A sweep
    that did not run for a while never purges without the notices. Safe to run
    twice: each notice is sent once, each document released or purged once.

    Then the audit records past their keeping period expire
    (:func:`spaces.core.audit.expire`).
    """
    now = now or retention.now_utc()
    actions = _sweep_documents(settings, db, now)
    audit.expire(settings, db, now)
    return actions


def _sweep_documents(settings: Settings, db: Database, now: datetime) -> list[SweepAction]:
    policy = settings.retention.policy
    actions: list[SweepAction] = []
    if policy == "release":
        for _space_id, name, doc_id, path, uuid in retention.due_for_release(db, now):
            retention.mark_released(db, doc_id, now)
            log.info("retention released: space=%s uuid=%s path=%s", name, uuid, path)
            actions.append(SweepAction(name, path, uuid, "released"))
        return actions

    first_days = timedelta(days=settings.retention.first_notice_days)
    final_days = timedelta(days=settings.retention.final_notice_days)
    with db.session() as s:
        docs = list(s.scalars(select(CfdiDocument).where(
            CfdiDocument.category.in_(retention.PROTECTED_CATEGORIES),
            CfdiDocument.released_at.is_(None),
            CfdiDocument.protected_until.is_not(None),
            CfdiDocument.protected_until <= now + first_days)))
        names = {sid: n for sid, n in s.execute(select(Space.id, Space.name))}
        holds = {sid: retention.active_holds(s, sid) for sid in {d.space_id for d in docs}}
    by_space: dict[int, list[CfdiDocument]] = {}
    for d in docs:
        if not retention.covered(d.path, holds[d.space_id]):
            by_space.setdefault(d.space_id, []).append(d)
    for space_id, items in by_space.items():
        name = names[space_id]
        to = _owner_email(db, space_id)
        first = [d for d in items if d.first_notice_at is None]
        final = [d for d in items if d.first_notice_at is not None and d.final_notice_at is None
                 and now >= d.protected_until - final_days  # type: ignore[operator]
                 and now >= d.first_notice_at + first_days - final_days]
        for group, is_final in ((first, False), (final, True)):
            if not group:
                continue
            if not to:
                log.warning("retention purge postponed: space=%s has no e-mail to notify", name)
                continue
            # every document here was selected with a protected_until
            when = max([now + (final_days if is_final else first_days)]
                       + [d.protected_until for d in group if d.protected_until])
            _notice(settings, to, name, group, when, is_final)
            column = "final_notice_at" if is_final else "first_notice_at"
            with db.session() as s:
                s.execute(update(CfdiDocument).where(CfdiDocument.id.in_([d.id for d in group]))
                          .values({column: now}))
            for d in group:
                setattr(d, column, now)
                actions.append(SweepAction(name, d.path, d.uuid,
                                           "final-notice" if is_final else "notice"))
        files = space_files(settings, db, space_id, name, actor=audit.SYSTEM)
        for d in items:
            due = (d.protected_until <= now  # type: ignore[operator]
                   and d.first_notice_at is not None and d.final_notice_at is not None
                   and now >= d.first_notice_at + first_days
                   and now >= d.final_notice_at + final_days)
            if not due:
                continue
            retention.mark_released(db, d.id, now)
            try:
                files.delete(d.path)
            except (SpaceError, OSError) as exc:
                log.error("retention purge failed: space=%s path=%s: %s", name, d.path, exc)
                actions.append(SweepAction(name, d.path, d.uuid, "released"))
                continue
            log.info("retention purged: space=%s uuid=%s path=%s", name, d.uuid, d.path)
            actions.append(SweepAction(name, d.path, d.uuid, "purged"))
    return actions
