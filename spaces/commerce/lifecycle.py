"""The life of a paid space after its payment: reminders before paid-until, a
grace period after it, then read-only (files readable and downloadable, nothing
deleted) until a renewal (see :func:`spaces.commerce.billing.process_event`) restores it.
The free space has no paid-until date: it never expires.

:func:`run` is idempotent and safe to run often (``resguardo lifecycle run``
from cron or a systemd timer, e.g. hourly): each reminder is recorded under a
unique (space, paid-until, kind) *before* it is sent, so two runs, even at the
same time on two machines, send it at most once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from spaces.commerce import notices
from spaces.core import audit
from spaces.core.db import Database, affected
from spaces.core.mail import Mail, Mailer, MailError
from spaces.core.models import Account, ReminderSent, Space
from spaces.core.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Report:
    reminded: list[tuple[str, int]] = field(default_factory=list)  # (space, days left)
    read_only: list[str] = field(default_factory=list)


def reminder_days(settings: Settings) -> list[int]:
    return sorted({int(x) for x in settings.billing.reminder_days.split(",") if x.strip()})


def _record(db: Database, space_id: int, paid_until: date, kinds: list[str]) -> bool:
    """Record ``kinds`` as sent; False if the first was already recorded (sent)."""
    try:
        with db.session() as s:
            for kind in kinds:
                s.add(ReminderSent(space_id=space_id, paid_until=paid_until, kind=kind))
        return True
    except IntegrityError:
        return False


def run(settings: Settings, db: Database, mailer: Mailer, links: notices.Links,
        today: date | None = None) -> Report:
    today = today or date.today()
    report = Report()
    days = reminder_days(settings)
    grace = timedelta(days=settings.billing.grace_days)
    with db.session() as s:
        rows = s.execute(
            select(Space.id, Space.name, Space.tier, Space.paid_until, Space.status,
                   Account.email, Space.owner_email)
            .outerjoin(Account, Account.id == Space.account_id)
            .where(Space.paid_until.is_not(None))).all()
    for space_id, name, tier, paid_until, status, account_email, owner_email in rows:
        assert paid_until is not None  # selected above
        to = account_email or owner_email
        left = (paid_until - today).days
        if left > 0:
            due = [d for d in days if left <= d]
            if not due:
                continue
            # The most urgent reminder; the earlier ones it supersedes are marked too,
            # so a job that was down for a week sends one e-mail, not three.
            kinds = [f"remind-{d}" for d in sorted(due)]
            if not to:
                continue
            if _record(db, space_id, paid_until, kinds[:1]):
                _record(db, space_id, paid_until, kinds[1:])
                _send(mailer, notices.renewal_reminder(to, space=name, tier=tier,
                                                       paid_until=paid_until, days=left,
                                                       renew_link=links.renew()))
                report.reminded.append((name, left))
                log.info("renewal reminder: space=%s paid_until=%s days_left=%d", name,
                         paid_until, left)
        elif today > paid_until + grace and status == "active":
            with db.session() as s:
                changed = affected(s.execute(
                    update(Space).where(Space.id == space_id).where(Space.status == "active")
                    .where(Space.paid_until == paid_until)
                    .values(status="readonly", status_reason="expired"))) == 1
                if changed:
                    audit.record(s, space_id, audit.Action.READ_ONLY, actor=audit.SYSTEM,
                                 space_name=name,
                                 detail=f"active -> readonly (sin pago desde {paid_until})")
            if not changed:
                continue
            report.read_only.append(name)
            log.info("space read-only after grace: space=%s paid_until=%s grace_days=%d",
                     name, paid_until, settings.billing.grace_days)
            if to and _record(db, space_id, paid_until, ["readonly"]):
                _send(mailer, notices.space_read_only(to, space=name, paid_until=paid_until,
                                                      renew_link=links.renew()))
    return report


def _send(mailer: Mailer, mail: Mail) -> None:
    try:
        mailer.send(mail)
    except MailError:
        pass  # logged; the reminder is recorded, the lifecycle goes on
