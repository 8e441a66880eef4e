"""What the domain counts for Prometheus (``/metrics``, see resguardo.observe).

Counters are per process (each drive node is scraped on its own) and carry no
space label: thousands of spaces would be thousands of series. The per-space
gauges come from the database at scrape time, for the top spaces only, and are
labelled with the space's number (``space_id``), never its name: names are
RFCs and company names (an RFC of a persona física is personal data), and
metrics often go to monitoring outside the installation. ``resguardo space
show NAME`` and the operator's page give a space's number.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from spaces.core.db import Database
from spaces.core.errors import QuotaExceeded
from spaces.core.models import CfdiDocument, Space

log = logging.getLogger(__name__)

QUOTA_REFUSALS = Counter(
    "resguardo_quota_refusals_total",
    "Writes refused because the space's quota (or the server's disk) had no room.",
    ["reason"])


def count_refusal(exc: BaseException) -> None:
    """Count a refusal a customer sees, where it is answered (the drive, the web
    drive): for now the writes refused for want of room (507)."""
    if isinstance(exc, QuotaExceeded):
        QUOTA_REFUSALS.labels(exc.reason).inc()


AUTH_FAILURES = Counter(
    "resguardo_auth_failures_total",
    "Refused logins: wrong password or user, throttled, over the plan's users, suspended.",
    ["reason"])
PASSWORD_CHECKS = Counter(
    "resguardo_drive_password_checks_total",
    "argon2 password checks the drive ran: logins its credential cache could not answer.")
RETENTION_PROTECTIONS = Counter(
    "resguardo_retention_protections_total",
    "Changes refused because they would alter or delete a protected CFDI.")


class SpaceUsageCollector:
    """Gauges read from the database on each scrape: usage and quota of the
    ``top`` spaces by bytes used, totals, and CFDI in custody. A database error
    yields ``resguardo_database_up 0`` instead of failing the whole scrape."""

    def __init__(self, db: Database, top: int) -> None:
        self.db = db
        self.top = top

    def describe(self) -> list[Any]:
        return []  # collected lazily; never at registration

    def collect(self) -> Iterator[Any]:
        up = GaugeMetricFamily("resguardo_database_up",
                               "1 if the database answered this scrape.")
        try:
            with self.db.engine.connect() as c:
                top = c.execute(select(Space.id, Space.used_bytes, Space.quota_bytes,
                                       Space.used_files)
                                .order_by(Space.used_bytes.desc(), Space.id)
                                .limit(self.top)).all()
                totals = c.execute(select(func.count(), func.coalesce(func.sum(
                    Space.used_bytes), 0)).select_from(Space)).one()
                by_status = c.execute(select(Space.status, func.count())
                                      .group_by(Space.status)).all()
                custody = c.execute(select(func.count()).select_from(CfdiDocument).where(
                    CfdiDocument.category == "index",
                    CfdiDocument.released_at.is_(None))).scalar_one()
        except SQLAlchemyError as exc:
            log.error("metrics: database unavailable: %s", exc.__class__.__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        used = GaugeMetricFamily("resguardo_space_used_bytes",
                                 f"Bytes used, for the {self.top} fullest spaces.",
                                 labels=["space_id"])
        quota = GaugeMetricFamily("resguardo_space_quota_bytes",
                                  f"Quota in bytes, for the {self.top} fullest spaces.",
                                  labels=["space_id"])
        files = GaugeMetricFamily("resguardo_space_files",
                                  f"Files and folders, for the {self.top} fullest spaces.",
                                  labels=["space_id"])
        for space_id, nbytes, limit, nfiles in top:
            used.add_metric([str(space_id)], nbytes)
            quota.add_metric([str(space_id)], limit)
            files.add_metric([str(space_id)], nfiles)
        yield used
        yield quota
        yield files
        spaces = GaugeMetricFamily("resguardo_spaces", "Spaces by status.", labels=["status"])
        for status, n in by_status:
            spaces.add_metric([status], n)
        yield spaces
        yield GaugeMetricFamily("resguardo_used_bytes", "Bytes used by all spaces.",
                                value=int(totals[1]))
        yield GaugeMetricFamily("resguardo_cfdi_in_custody",
                                "Stamped CFDI currently protected (not yet released).",
                                value=int(custody))
