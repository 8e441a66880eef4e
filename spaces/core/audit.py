"""The audit log: every change to a space, who made it, from where, when.

Contract
========

- **Append-only.** This module has :func:`record` and read functions; there is
  no update and no delete API. A database trigger (migration 0006) refuses any
  UPDATE of ``audit_log``, whatever issues it. The only deletion is
  :func:`expire`, run by the retention sweep (``resguardo retention sweep``).
- **Kept at least as long as the space's CFDI retention.** :func:`expire`
  deletes only records older than the *longest* CFDI period any plan offers
  (so a downgrade, a lapse or the space's own deletion never shortens it)
  plus :data:`KEEP_MARGIN`, and never those of a space under an active legal
  hold. Records carry the space's name and no foreign key, so they survive
  the space itself.
- **Time in UTC** (``at``, naive UTC like every time column of the schema).
- **One INSERT per event.** Indexed by (space_id, at) for the space admin's
  view and by ``at`` for the operator's view and expiry.

Failure policy (fail closed where the record is part of the change)
-------------------------------------------------------------------

:func:`record` takes the caller's ``Session`` or ``Connection`` when the
change is a database change (a member added, a role, a tier, a suspension, a
hold, a CFDI indexed or released): the record is written in the *same
transaction*, so a failing record rolls the change back with it — no change
without its record (fail closed), and nothing on disk is lost because nothing
was made visible.

File operations change the filesystem, which no transaction covers: by the
time the record is written the new file is in place or the old one gone.
Refusing then would turn a stored upload into an error (and tempt cleanup code
to undo a successful write) — losing data to protect the log. So when
:func:`record` gets a :class:`~spaces.core.db.Database` it writes its own short
transaction *after the fact* and never raises: a failure is logged at ERROR
with every field of the record (the log line is the record of last resort) and
counted in ``resguardo_audit_failures_total``. In practice a database that
cannot take the INSERT has already refused the write earlier, because quota
and retention are read from it first (those fail closed).

Actors
------

:class:`Actor` says who: a space member (``user`` = username, ``via`` =
``dav`` or ``web``), a portal account (``account:NAME``), an operator
(``operator:NAME``), the command line (``cli:OSUSER``) or the server itself
(``system``: sweep, lifecycle, payments). ``address`` is the client's address
(``REMOTE_ADDR`` after the trusted-proxy rewrite), when there is a client.
"""

from __future__ import annotations

import getpass
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any, TextIO

from prometheus_client import Counter
from sqlalchemy import Connection, Select, delete, func, insert, or_, select
from sqlalchemy.orm import Session

from spaces.core import csvexport, plans
from spaces.core.db import Database
from spaces.core.models import AuditRecord, CfdiHold, Space, utcnow
from spaces.core.settings import Settings

log = logging.getLogger(__name__)

AUDIT_FAILURES = Counter(
    "resguardo_audit_failures_total",
    "Audit records that could not be written after a file operation (logged instead).")

#: Records are kept this long beyond the longest CFDI period of any plan.
KEEP_MARGIN = timedelta(days=90)
#: No record younger than this many days can be deleted by anyone: a database
#: trigger (migration 0017) refuses it. Five years (the longest CFDI period of
#: the plans; the shortest five calendar years are 1,826 days) plus the margin.
FLOOR_DAYS = 1916


class Action(StrEnum):
    """What happened. The values are stored and exported: never rename one."""

    # files (recorded by spaces.files.storage and the trash/versions code)
    UPLOAD = "upload"
    OVERWRITE = "overwrite"
    DELETE = "delete"
    MOVE = "move"
    COPY = "copy"
    MKDIR = "mkdir"
    TRASH_RESTORE = "trash_restore"
    TRASH_PURGE = "trash_purge"
    VERSION_RESTORE = "version_restore"
    VERSION_PURGE = "version_purge"
    LOCK_STOLEN = "lock_stolen"
    # members
    MEMBER_ADDED = "member_added"
    MEMBER_REMOVED = "member_removed"
    ROLE_CHANGED = "role_changed"
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 - an event name, not a secret
    # the space
    SPACE_CREATED = "space_created"
    TIER_CHANGED = "tier_changed"
    SUSPENDED = "suspended"
    REACTIVATED = "reactivated"
    READ_ONLY = "read_only"
    # CFDI custody
    CFDI_PROTECTED = "cfdi_protected"
    CFDI_RELEASED = "cfdi_released"
    HOLD_PLACED = "hold_placed"
    HOLD_LIFTED = "hold_lifted"
    # share links (web drive)
    SHARE_CREATED = "share_created"
    SHARE_REVOKED = "share_revoked"
    # facturas of the space's orders (spaces.commerce.invoicing)
    INVOICE_ISSUED = "invoice_issued"
    INVOICE_CANCELLED = "invoice_cancelled"
    INVOICE_CANCEL_REJECTED = "invoice_cancel_rejected"
    ORDER_REFUNDED = "order_refunded"


#: Spanish descriptions, for the CSV export and the command line (the portal
#: has its own translatable copy).
LABELS_ES: dict[str, str] = {
    Action.UPLOAD: "Archivo subido",
    Action.OVERWRITE: "Archivo sobrescrito",
    Action.DELETE: "Borrado",
    Action.MOVE: "Movido o renombrado",
    Action.COPY: "Copiado",
    Action.MKDIR: "Carpeta creada",
    Action.TRASH_RESTORE: "Restaurado de la papelera",
    Action.TRASH_PURGE: "Eliminado de la papelera",
    Action.VERSION_RESTORE: "Versión restaurada",
    Action.VERSION_PURGE: "Versión eliminada",
    Action.LOCK_STOLEN: "Bloqueo quitado a otro usuario",
    Action.MEMBER_ADDED: "Usuario agregado",
    Action.MEMBER_REMOVED: "Usuario eliminado",
    Action.ROLE_CHANGED: "Rol cambiado",
    Action.PASSWORD_CHANGED: "Contraseña cambiada",
    Action.SPACE_CREATED: "Espacio creado",
    Action.TIER_CHANGED: "Plan cambiado",
    Action.SUSPENDED: "Espacio suspendido",
    Action.REACTIVATED: "Espacio reactivado",
    Action.READ_ONLY: "Espacio en solo lectura",
    Action.CFDI_PROTECTED: "CFDI en resguardo",
    Action.CFDI_RELEASED: "CFDI liberado",
    Action.HOLD_PLACED: "Retención legal puesta",
    Action.HOLD_LIFTED: "Retención legal levantada",
    Action.SHARE_CREATED: "Enlace compartido creado",
    Action.SHARE_REVOKED: "Enlace compartido revocado",
    Action.INVOICE_ISSUED: "Factura emitida",
    Action.INVOICE_CANCELLED: "Factura cancelada",
    Action.INVOICE_CANCEL_REJECTED: "Cancelación de factura rechazada por el receptor",
    Action.ORDER_REFUNDED: "Pedido reembolsado",
}


@dataclass(frozen=True)
class Actor:
    """Who made a change, from where, through what (see the module docstring)."""

    user: str | None
    address: str | None = None
    via: str | None = None

    @classmethod
    def cli(cls) -> Actor:
        try:
            who = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry (containers)
            who = "?"
        return cls(f"cli:{who}", None, "cli")


SYSTEM = Actor("system", None, "system")


def _clip(value: str | None, n: int) -> str | None:
    return None if value is None else value[:n]


def _rel(path: str | None) -> str | None:
    return None if path is None else "/" + path.strip("/")


def _values(space_id: int, action: str, actor: Actor | None, path: str | None,
            dest: str | None, size: int | None, detail: str | None,
            space_name: str | None) -> dict[str, Any]:
    name: Any = space_name
    if name is None:
        name = func.coalesce(select(Space.name).where(Space.id == space_id)
                             .scalar_subquery(), f"#{space_id}")
    return {
        "at": utcnow(), "space_id": space_id, "space_name": name,
        "action": Action(action).value,
        "user": _clip(actor.user, 160) if actor else None,
        "address": _clip(actor.address, 64) if actor else None,
        "via": _clip(actor.via, 16) if actor else None,
        "path": _clip(_rel(path), 2048), "dest": _clip(_rel(dest), 2048),
        "size": size, "detail": _clip(detail, 1000),
    }


#: Built once: the drive appends a record on every change, and building the
#: statement each time cost more than running it.
_INSERT = insert(AuditRecord)


def record(target: Database | Session | Connection, space_id: int, action: Action | str,
           *, actor: Actor | None, path: str | None = None, dest: str | None = None,
           size: int | None = None, detail: str | None = None,
           space_name: str | None = None) -> bool:
    """Append one record. ``action`` must be an :class:`Action` (ValueError otherwise).

    With a ``Session`` or ``Connection``: inside the caller's transaction;
    errors propagate, so the change and its record commit or roll back
    together (fail closed). With a ``Database``: its own transaction, after
    the fact; never raises — returns False after logging the whole record at
    ERROR (see the module docstring). ``space_name`` saves a lookup.
    """
    values = _values(space_id, action, actor, path, dest, size, detail, space_name)
    if isinstance(values["space_name"], str):
        stmt, params = _INSERT, values
    else:  # the name comes from a subquery
        stmt, params = insert(AuditRecord).values(**values), None
    if isinstance(target, (Session, Connection)):
        target.execute(stmt, params)
        return True
    try:
        with target.engine.begin() as c:
            c.execute(stmt, params)
        return True
    except Exception as exc:  # noqa: BLE001 - after the fact: log, never undo the change
        AUDIT_FAILURES.inc()
        log.error("audit write failed (record kept here): space=%s action=%s user=%s "
                  "addr=%s via=%s path=%s dest=%s size=%s detail=%s: %s", space_id,
                  values["action"], values["user"], values["address"], values["via"],
                  values["path"], values["dest"], size, values["detail"], exc)
        return False


# -- reading -------------------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    id: int
    at: datetime
    space_id: int
    space_name: str
    action: str
    user: str | None
    address: str | None
    via: str | None
    path: str | None
    dest: str | None
    size: int | None
    detail: str | None

    @property
    def label(self) -> str:
        return LABELS_ES.get(self.action, self.action)


@dataclass(frozen=True)
class Filter:
    """What to list. ``space_id`` None means every space (operators only).
    ``date_from``/``date_to`` are inclusive UTC days (or exact datetimes);
    ``path`` matches, case-insensitively, anywhere in the path or destination;
    ``user`` is exact (case-insensitive); ``space`` a space name (operator view)."""

    space_id: int | None = None
    date_from: date | datetime | None = None
    date_to: date | datetime | None = None
    user: str | None = None
    action: str | None = None
    path: str | None = None
    space: str | None = None


def _like_any(text: str) -> str:
    t = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{t}%"


def _statement(f: Filter) -> Select[Any]:
    r = AuditRecord
    stmt = select(r)
    if f.space_id is not None:
        stmt = stmt.where(r.space_id == f.space_id)
    if f.space:
        stmt = stmt.where(r.space_name == f.space.strip().lower())
    if f.date_from is not None:
        start = (f.date_from if isinstance(f.date_from, datetime)
                 else datetime.combine(f.date_from, time.min))
        stmt = stmt.where(r.at >= start)
    if f.date_to is not None:
        if isinstance(f.date_to, datetime):
            stmt = stmt.where(r.at <= f.date_to)
        else:
            stmt = stmt.where(r.at < datetime.combine(f.date_to + timedelta(days=1), time.min))
    if f.user:
        stmt = stmt.where(func.lower(r.user) == f.user.strip().lower())
    if f.action:
        stmt = stmt.where(r.action == Action(f.action).value)
    if f.path:
        like = _like_any(f.path.strip().lower())
        stmt = stmt.where(or_(func.lower(r.path).like(like, escape="\\"),
                              func.lower(r.dest).like(like, escape="\\")))
    return stmt


def _entry(r: AuditRecord) -> Entry:
    return Entry(r.id, r.at, r.space_id, r.space_name, r.action, r.user, r.address, r.via,
                 r.path, r.dest, r.size, r.detail)


def query(db: Database, f: Filter, *, limit: int = 200,
          before_id: int | None = None) -> list[Entry]:
    """Newest first, at most ``limit``; ``before_id`` pages to older records."""
    stmt = _statement(f)
    if before_id is not None:
        stmt = stmt.where(AuditRecord.id < before_id)
    stmt = stmt.order_by(AuditRecord.at.desc(), AuditRecord.id.desc()).limit(limit)
    with db.session() as s:
        return [_entry(r) for r in s.scalars(stmt)]


def iter_entries(db: Database, f: Filter, *, batch: int = 2000) -> Iterator[Entry]:
    """Every matching record, oldest first, read in batches (for exports)."""
    last = 0
    while True:
        stmt = (_statement(f).where(AuditRecord.id > last)
                .order_by(AuditRecord.id).limit(batch))
        with db.session() as s:
            rows = [_entry(r) for r in s.scalars(stmt)]
        yield from rows
        if len(rows) < batch:
            return
        last = rows[-1].id


#: The CSV columns, in Spanish (what the customer reads); ``accion`` is the stable code.
CSV_HEADER = ("fecha_utc", "espacio", "accion", "descripcion", "usuario", "direccion", "via",
              "ruta", "destino", "bytes", "detalle")


def csv_row(e: Entry) -> list[str]:
    """A record as the export's cells (raw: :mod:`spaces.core.csvexport` makes them safe)."""
    return [e.at.strftime("%Y-%m-%dT%H:%M:%SZ"), e.space_name, e.action, e.label,
            e.user or "", e.address or "", e.via or "", e.path or "", e.dest or "",
            "" if e.size is None else str(e.size), e.detail or ""]


def export_csv(db: Database, f: Filter, out: TextIO) -> int:
    """Write every matching record (oldest first) as CSV to ``out``; returns rows."""
    return csvexport.write(out, CSV_HEADER, (csv_row(e) for e in iter_entries(db, f)))


def csv_lines(db: Database, f: Filter) -> Iterator[str]:
    """The same CSV as :func:`export_csv` with a BOM, in pieces (a streamed download)."""
    return csvexport.chunks(CSV_HEADER, (csv_row(e) for e in iter_entries(db, f)))


# -- expiry --------------------------------------------------------------------------

def keep_years(settings: Settings) -> int:
    """The longest CFDI period of any plan: every space's records are kept that long."""
    return max((t.cfdi_years for t in plans.list_tiers(settings)), default=5)


def cutoff(settings: Settings, now: datetime) -> datetime:
    """Records before this moment may be deleted (unless a hold covers their space)."""
    years = keep_years(settings)
    try:
        start = now.replace(year=now.year - years)
    except ValueError:  # 29 February
        start = now.replace(year=now.year - years, day=28)
    return start - KEEP_MARGIN


def expire(settings: Settings, db: Database, now: datetime | None = None) -> int:
    """Delete records older than :func:`cutoff`, except those of spaces with an
    active legal hold. The only deletion of audit records. Returns how many.

    Never younger than :data:`FLOOR_DAYS` (and a day) by the real clock,
    whatever ``now`` says (the sweep's ``--now``) or the plans allow: the
    database's trigger would refuse them, and a record is worth more than a
    shorter plan."""
    floor = utcnow() - timedelta(days=FLOOR_DAYS + 1)
    limit = min(cutoff(settings, now or utcnow()), floor)
    held = select(CfdiHold.space_id).where(CfdiHold.lifted_at.is_(None))
    with db.engine.begin() as c:
        n = int(c.execute(delete(AuditRecord).where(AuditRecord.at < limit,
                                                    AuditRecord.space_id.not_in(held))
                          ).rowcount or 0)
    if n:
        log.info("audit records expired: count=%d before=%s", n, limit.isoformat())
    return n
