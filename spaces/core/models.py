"""Database models. The schema is created and changed only by Alembic
migrations (``spaces/core/migrations``); ``Base.metadata`` is what they must match.

One module on purpose, though it is over 600 lines: it is declarations only (no
logic), and it is the one schema that a migration is checked against, that a
backup archives table by table in foreign-key order (``Base.metadata``) and that
every room reads. The tables of the files, CFDI and commerce rooms live here in
``core`` because their foreign keys cross rooms (spaces, accounts, orders) and
``core`` may import no other room; cut into several modules of ``core`` they would
still be one schema, only harder to read against a migration."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def new_session_version() -> str:
    """A fresh session version: renewing it ends every portal session made
    under the old one (see ``Account.session_version``)."""
    return secrets.token_hex(16)


class Base(DeclarativeBase):
    pass


class Space(Base):
    """A customer's drive. ``used_bytes``/``used_files`` (its current files,
    what the plan counts) and ``held_bytes``/``held_files`` (its trash and
    earlier versions, kept within ``reserve_bytes``, outside the plan) change
    only through :mod:`spaces.files.quota` (SQL deltas)."""

    __tablename__ = "spaces"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    tier: Mapped[str] = mapped_column(String(16), nullable=False)
    quota_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    max_users: Mapped[int | None] = mapped_column(Integer, nullable=True)
    used_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    used_files: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    #: The safety reserve for the trash and earlier versions (set with the tier).
    reserve_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0,
                                               server_default="0")
    held_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0,
                                            server_default="0")
    held_files: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0,
                                            server_default="0")
    #: The tier's limits on entries (files and folders, trash and versions
    #: included; 0: none) and on path depth, set with the tier.
    max_entries: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0,
                                             server_default="0")
    max_depth: Mapped[int] = mapped_column(Integer, nullable=False, default=64,
                                           server_default="64")
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="active")
    owner_email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    paid_until: Mapped[date | None] = mapped_column(Date, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    #: The portal account that owns the space (None: created from the command line).
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), nullable=True, index=True
    )
    #: Why the space is read-only or suspended ("expired", "operator"), if it is.
    status_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: Whether its users may create share links (set by a space admin; off by default).
    share_links_enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False,
                                                      server_default=false())


class Member(Base):
    """A user of one space (the drive's login). Unique per space."""

    __tablename__ = "members"
    __table_args__ = (UniqueConstraint("space_id", "username", name="uq_members_space_user"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    space_id: Mapped[int] = mapped_column(
        ForeignKey("spaces.id", ondelete="CASCADE"), nullable=False, index=True
    )
    username: Mapped[str] = mapped_column(String(64), nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False, default="editor")
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    #: Where the portal sends this user's set-password links (optional).
    email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    #: The version its web sessions carry (see ``Account.session_version``): renewed
    #: by logout, a password change and the space's suspension. Random, so a
    #: member removed and added again never matches a session of the old one.
    session_version: Mapped[str] = mapped_column(String(32), nullable=False,
                                                 default=new_session_version,
                                                 server_default="")


#: Where the drive is mounted: dead properties and locks are keyed by URL paths
#: under it, "/dav/<space>/<URL-quoted path>".
DAV_MOUNT = "/dav"
#: The longest such key the database keeps (DeadProperty.path, DavLock.root):
#: no path whose key would be longer is made (see SpaceFiles.check_path).
MAX_KEY_CHARS = 2048
#: The longest property name it keeps (DeadProperty.name).
MAX_PROPERTY_NAME = 512


class DeadProperty(Base):
    """A WebDAV dead property, keyed by the resource's URL path (see DAV_MOUNT)."""

    __tablename__ = "dav_properties"
    __table_args__ = (UniqueConstraint("path", "name", name="uq_dav_properties_path_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(MAX_KEY_CHARS), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(MAX_PROPERTY_NAME), nullable=False)
    value: Mapped[str] = mapped_column(Text, nullable=False)


class DavLock(Base):
    """A WebDAV lock (the 'database' lock backend)."""

    __tablename__ = "dav_locks"

    token: Mapped[str] = mapped_column(String(128), primary_key=True)
    root: Mapped[str] = mapped_column(String(MAX_KEY_CHARS), nullable=False, index=True)
    principal: Mapped[str] = mapped_column(String(128), nullable=False)
    owner: Mapped[str] = mapped_column(Text, nullable=False, default="")
    scope: Mapped[str] = mapped_column(String(16), nullable=False)
    type: Mapped[str] = mapped_column(String(16), nullable=False)
    depth: Mapped[str] = mapped_column(String(16), nullable=False)
    timeout: Mapped[float] = mapped_column(Float, nullable=False)
    expire: Mapped[float] = mapped_column(Float, nullable=False)


class CfdiDocument(Base):
    """An XML file examined by the CFDI indexer (derived data: ``resguardo cfdi
    reindex`` rebuilds it from the files).

    ``category`` is what the indexer concluded: ``index`` (a stamped CFDI or
    Retenciones, protected until ``protected_until``), ``acuse`` (a SAT
    cancellation acknowledgement, linked by UUID), ``unstamped``,
    ``flag-invalid``, ``not-cfdi``, ``reject-malformed``, ``reject-hostile``,
    ``too-large``. ``duplicate_of`` points at the first document with the same
    UUID; ``conflict`` is set when that duplicate's bytes differ.
    """

    __tablename__ = "cfdi_documents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    space_id: Mapped[int] = mapped_column(
        ForeignKey("spaces.id", ondelete="CASCADE"), nullable=False, index=True
    )
    path: Mapped[str] = mapped_column(String(2048), nullable=False)
    category: Mapped[str] = mapped_column(String(24), nullable=False)
    reason: Mapped[str | None] = mapped_column(String(255), nullable=True)
    uuid: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    version: Mapped[str | None] = mapped_column(String(8), nullable=True)
    tipo: Mapped[str | None] = mapped_column(String(16), nullable=True)
    emisor_rfc: Mapped[str | None] = mapped_column(String(16), nullable=True, index=True)
    emisor_nombre: Mapped[str | None] = mapped_column(String(300), nullable=True)
    receptor_rfc: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    receptor_nombre: Mapped[str | None] = mapped_column(String(300), nullable=True)
    fecha: Mapped[str | None] = mapped_column(String(32), nullable=True)
    fecha_timbrado: Mapped[str | None] = mapped_column(String(32), nullable=True)
    total: Mapped[str | None] = mapped_column(String(32), nullable=True)
    monto_pagado: Mapped[str | None] = mapped_column(String(32), nullable=True)
    moneda: Mapped[str | None] = mapped_column(String(8), nullable=True)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    ingested_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    protected_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    duplicate_of: Mapped[int | None] = mapped_column(Integer, nullable=True)
    conflict: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    cancelled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    released_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    #: Purge policy: when the owner was told the document will be deleted.
    first_notice_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    final_notice_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class CfdiHold(Base):
    """A legal hold: documents at ``path`` (a file, a folder prefix, or "/" for the
    whole space) stay protected past their period until the hold is lifted."""

    __tablename__ = "cfdi_holds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    space_id: Mapped[int] = mapped_column(
        ForeignKey("spaces.id", ondelete="CASCADE"), nullable=False, index=True
    )
    path: Mapped[str] = mapped_column(String(2048), nullable=False)
    reason: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    placed_by: Mapped[str] = mapped_column(String(128), nullable=False)
    placed_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    lifted_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lifted_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


# -- the portal: accounts, one-time links, cart, orders, payments --------------------

class Account(Base):
    """A customer (or operator) of the portal. Owns spaces (``Space.account_id``).

    ``ever_had_space`` is set, once and forever, by the first space the account
    gets (free or paid): the free tier is claimable only while it is false, and
    the claim is a conditional UPDATE so two simultaneous clicks get one space.
    """

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    email: Mapped[str] = mapped_column(String(254), unique=True, nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    rfc: Mapped[str | None] = mapped_column(String(13), nullable=True)
    email_confirmed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    ever_had_space: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    is_operator: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    #: The version a portal session of this account carries; logout and a password
    #: change or reset renew it, and a session whose version differs is over.
    session_version: Mapped[str] = mapped_column(String(32), nullable=False,
                                                 default=new_session_version,
                                                 server_default="")
    #: ``rfc`` is what the customer states; it names a space only once an operator
    #: verified it against the Constancia de Situación Fiscal the customer uploaded
    #: (see spaces.commerce.rfc_claims). One account at most holds a verified RFC (index).
    rfc_verified_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    rfc_verified_by: Mapped[str | None] = mapped_column(String(160), nullable=True)
    #: The uploaded constancia's file name under data_dir/rfc/, and when it came.
    rfc_document: Mapped[str | None] = mapped_column(String(80), nullable=True)
    rfc_document_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    #: Why an operator turned the constancia down (shown to the customer).
    rfc_review_note: Mapped[str | None] = mapped_column(String(300), nullable=True)
    #: Fiscal data for its facturas (with ``rfc``; see spaces.commerce.fiscal): the razón social
    #: as in the constancia, SAT's régimen fiscal, the domicilio fiscal's postal code
    #: and the uso de CFDI it asks for by default.
    razon_social: Mapped[str | None] = mapped_column(String(300), nullable=True)
    regimen_fiscal: Mapped[str | None] = mapped_column(String(3), nullable=True)
    codigo_postal: Mapped[str | None] = mapped_column(String(5), nullable=True)
    uso_cfdi: Mapped[str | None] = mapped_column(String(4), nullable=True)

    __table_args__ = (
        Index("uq_accounts_verified_rfc", "rfc", unique=True,
              sqlite_where=text("rfc_verified_at IS NOT NULL"),
              postgresql_where=text("rfc_verified_at IS NOT NULL")),
    )


class OneTimeToken(Base):
    """An e-mailed one-time link. Only the SHA-256 of the token is stored; it is
    spent by a conditional UPDATE (``used_at IS NULL``), so it works once."""

    __tablename__ = "one_time_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    purpose: Mapped[str] = mapped_column(String(24), nullable=False)
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), nullable=True, index=True
    )
    member_id: Mapped[int | None] = mapped_column(
        ForeignKey("members.id", ondelete="CASCADE"), nullable=True, index=True
    )
    data: Mapped[str | None] = mapped_column(String(254), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class CartItem(Base):
    """Something an account means to buy: a tier for a period, for a space named
    after its RFC or its username. Prices are computed when shown, and frozen
    into an :class:`OrderItem` at checkout."""

    __tablename__ = "cart_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True
    )
    tier: Mapped[str] = mapped_column(String(16), nullable=False)
    period: Mapped[str] = mapped_column(String(16), nullable=False)
    space_name: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)


class Order(Base):
    """A checkout. Amounts are whole centavos (MXN). ``status`` goes
    ``pending`` -> ``paid`` exactly once (conditional UPDATE), which is what
    provisions; declined or failed payments leave it ``pending``."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reference: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True
    )
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    subtotal_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    discount_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    tax_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    total_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    contract_version: Mapped[str] = mapped_column(String(32), nullable=False)
    contract_accepted_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    gateway: Mapped[str] = mapped_column(String(32), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    #: How it was paid, as the gateway said ("credit_card", "debit_card", ...): the
    #: factura's forma de pago.
    payment_method: Mapped[str | None] = mapped_column(String(16), nullable=True)
    #: The customer asked for a factura at checkout: it is issued when the payment comes.
    invoice_requested: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False,
                                                    server_default=false())
    #: Which factura covers it, claimed once by a conditional UPDATE: "none", "own"
    #: (a factura to the customer) or "global" (the month's factura to the público
    #: en general, ``global_invoice_id``).
    invoice_state: Mapped[str] = mapped_column(String(8), nullable=False, default="none",
                                               server_default="none")
    global_invoice_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)


class OrderItem(Base):
    """One line of an order, its prices frozen at checkout (centavos)."""

    __tablename__ = "order_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), nullable=False, index=True
    )
    tier: Mapped[str] = mapped_column(String(16), nullable=False)
    period: Mapped[str] = mapped_column(String(16), nullable=False)
    months: Mapped[int] = mapped_column(Integer, nullable=False)
    space_name: Mapped[str] = mapped_column(String(64), nullable=False)
    description: Mapped[str] = mapped_column(String(200), nullable=False)
    price_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    discount_percent: Mapped[str] = mapped_column(String(8), nullable=False)
    discount_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    subtotal_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    tax_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    total_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    outcome: Mapped[str | None] = mapped_column(String(200), nullable=True)
    #: A plan change: the unused days of the plan it replaces, credited (also in
    #: discount_cents, the CFDI's Descuento), how many days and of which plan.
    credit_cents: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0,
                                              server_default="0")
    credit_days: Mapped[int] = mapped_column(Integer, nullable=False, default=0,
                                             server_default="0")
    credit_tier: Mapped[str | None] = mapped_column(String(16), nullable=True)
    #: A credit larger than the new plan's price: days of the new plan it bought.
    extra_days: Mapped[int] = mapped_column(Integer, nullable=False, default=0,
                                            server_default="0")


class PaymentEvent(Base):
    """Every verified gateway event, once: (gateway, event_id) is unique, so the
    same webhook delivered twice is recorded and acted on once."""

    __tablename__ = "payment_events"
    __table_args__ = (UniqueConstraint("gateway", "event_id", name="uq_payment_events_event"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    gateway: Mapped[str] = mapped_column(String(32), nullable=False)
    event_id: Mapped[str] = mapped_column(String(128), nullable=False)
    order_id: Mapped[int | None] = mapped_column(
        ForeignKey("orders.id", ondelete="SET NULL"), nullable=True, index=True
    )
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)
    amount_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    detail: Mapped[str] = mapped_column(String(500), nullable=False, default="")
    received_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)


class ReminderSent(Base):
    """A lifecycle e-mail already sent: one per space, paid-until date and kind,
    so running the lifecycle job twice never sends a reminder twice."""

    __tablename__ = "reminders_sent"
    __table_args__ = (
        UniqueConstraint("space_id", "paid_until", "kind", name="uq_reminders_sent"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    space_id: Mapped[int] = mapped_column(
        ForeignKey("spaces.id", ondelete="CASCADE"), nullable=False, index=True
    )
    paid_until: Mapped[date] = mapped_column(Date, nullable=False)
    kind: Mapped[str] = mapped_column(String(24), nullable=False)
    sent_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)


class ApiToken(Base):
    """A bearer token of the operator REST API (``/api/v1/``). Only its SHA-256
    is stored; the token itself is shown once, when it is created."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class AuditRecord(Base):
    """One change to a space (see :mod:`spaces.core.audit`): append-only. A database
    trigger refuses UPDATE; the only DELETE is :func:`spaces.core.audit.expire`.

    ``space_id`` deliberately has no foreign key and ``space_name`` is copied:
    the records of a space outlive the space (they are kept at least as long as
    its CFDI retention, whatever happens to the space meanwhile).
    """

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_space_at", "space_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: When, in UTC (naive, like every time column here).
    at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow, index=True)
    space_id: Mapped[int] = mapped_column(Integer, nullable=False)
    space_name: Mapped[str] = mapped_column(String(64), nullable=False)
    action: Mapped[str] = mapped_column(String(32), nullable=False)
    #: Who: a member's username, ``operator:NAME``, ``account:NAME``, ``cli``, ``system``.
    user: Mapped[str | None] = mapped_column(String(160), nullable=True)
    #: Where from: the client's IP address (after trusted proxies), if any.
    address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: Through what: ``dav``, ``web``, ``portal``, ``api``, ``cli``, ``system``.
    via: Mapped[str | None] = mapped_column(String(16), nullable=True)
    path: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    dest: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    detail: Mapped[str | None] = mapped_column(String(1000), nullable=True)


# -- trash bin and file versions (spaces.files.trash, spaces.files.versions) ---------------------

class TrashItem(Base):
    """A deleted file or folder, kept in ``spaces/<name>/trash/<token>`` until it is
    restored, expires (``[trash] days``) or the trash is emptied. Counts toward
    the space's usage like any stored file."""

    __tablename__ = "trash_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    space_id: Mapped[int] = mapped_column(
        ForeignKey("spaces.id", ondelete="CASCADE"), nullable=False, index=True
    )
    #: Name of the entry under the space's ``trash`` folder.
    token: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    #: Where it was: '/a/b.xlsx' (NFC), as the CFDI index writes paths.
    path: Mapped[str] = mapped_column(String(2048), nullable=False)
    is_dir: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    #: Bytes and entries (files and folders, itself included) it holds.
    size: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    files: Mapped[int] = mapped_column(BigInteger, nullable=False, default=1)
    trashed_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow,
                                                 index=True)
    trashed_by: Mapped[str | None] = mapped_column(String(160), nullable=True)


class FileVersion(Base):
    """An earlier content of the file at ``path``, kept in
    ``spaces/<name>/versions/<token>`` when the file was overwritten (PUT, COPY
    or MOVE onto it, Office's save-by-rename). Counts toward usage."""

    __tablename__ = "file_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    space_id: Mapped[int] = mapped_column(
        ForeignKey("spaces.id", ondelete="CASCADE"), nullable=False, index=True
    )
    token: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    path: Mapped[str] = mapped_column(String(2048), nullable=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    #: The content's own modification time (what Windows showed for it).
    mtime: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    #: When it stopped being the current content.
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow,
                                                 index=True)
    created_by: Mapped[str | None] = mapped_column(String(160), nullable=True)


class RenameTrail(Base):
    """A file renamed away to a temporary name (Office's save-by-rename renames
    the document to ``~WRL0002.tmp`` before putting the new one in its place):
    deleting ``path`` later keeps it as a version of ``origin`` instead of
    sending it to the trash. Short-lived; expired by the sweep."""

    __tablename__ = "rename_trails"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    space_id: Mapped[int] = mapped_column(
        ForeignKey("spaces.id", ondelete="CASCADE"), nullable=False, index=True
    )
    path: Mapped[str] = mapped_column(String(2048), nullable=False)
    origin: Mapped[str] = mapped_column(String(2048), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)


class LockPlaceholder(Base):
    """An empty file a WebDAV LOCK created on a name that did not exist (RFC
    4918 §9.10.4), until its first write: a refused write or the end of its
    lock (UNLOCK, expiry) without a write removes it, so a refused copy
    (davfs2, Office) leaves nothing behind. ``inode`` tells the placeholder
    from a file written there since (a write replaces the inode)."""

    __tablename__ = "lock_placeholders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    space_id: Mapped[int] = mapped_column(
        ForeignKey("spaces.id", ondelete="CASCADE"), nullable=False, index=True
    )
    path: Mapped[str] = mapped_column(String(2048), nullable=False)
    inode: Mapped[int] = mapped_column(BigInteger, nullable=False)
    #: How the drive names the lock's root (its URL path, as the client sent it).
    lock_root: Mapped[str] = mapped_column(String(2048), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)


class UploadLease(Base):
    """What one upload in flight has added to its space's counters (``used``
    bytes and files, ``held`` bytes: see spaces.files.quota), which process holds it
    (``node``, ``pid``, its temporary file ``tmp_name`` in the space's ``tmp``)
    and until when: renewed while the body streams, taken with the final
    accounting of a commit or an abort. Any node gives back an expired one,
    and a node its own dead processes' at once (spaces.files.quota.reclaim)."""

    __tablename__ = "upload_leases"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    space_id: Mapped[int] = mapped_column(
        ForeignKey("spaces.id", ondelete="CASCADE"), nullable=False, index=True
    )
    node: Mapped[str] = mapped_column(String(64), nullable=False)
    pid: Mapped[int] = mapped_column(Integer, nullable=False)
    tmp_name: Mapped[str] = mapped_column(String(255), nullable=False)
    used_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    used_files: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    held_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    expires_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, index=True)


class ShareLink(Base):
    """A read-only link to a file or folder of a space (the web drive's "compartir").

    Only the SHA-256 of the token is stored (the link is shown once, when it is
    created); the optional password is an argon2 hash like members'. A link
    stops working when it expires, is revoked, its space turns share links off
    or what it was made for is gone (deleted or replaced: see ``inode``)."""

    __tablename__ = "share_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    space_id: Mapped[int] = mapped_column(
        ForeignKey("spaces.id", ondelete="CASCADE"), nullable=False, index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    path: Mapped[str] = mapped_column(String(2048), nullable=False)
    is_dir: Mapped[bool] = mapped_column(Boolean, nullable=False)
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_by: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    downloads: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    #: The shared object's identity: its inode, which a rename or a move keeps and a
    #: replacement (a new upload, a copy over it) changes. ``path`` follows the
    #: object's renames; a link whose path holds another inode serves nothing.
    #: None for links made before identities were kept: bound at their next opening.
    inode: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    #: When the object was deleted: the link is over, even if it comes back from
    #: the trash.
    gone_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class LoginFailure(Base):
    """Recent bad passwords of one subject (a drive user, an account, a share link,
    an address) and how long it is paused: see :mod:`spaces.access.throttle`. Only a
    SHA-256 of the subject is stored; times are seconds since the epoch."""

    __tablename__ = "login_failures"

    subject: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, nullable=False)
    first_at: Mapped[float] = mapped_column(Float, nullable=False)
    blocked_until: Mapped[float] = mapped_column(Float, nullable=False, index=True)


#: The statuses of a live factura: at most one per order and per global period.
INVOICE_LIVE = "status IN ('stamping', 'valid', 'cancelling', 'cancel_pending')"


class Invoice(Base):
    """A factura (CFDI 4.0 de Ingreso) the operator issued: to a customer for one
    order (``order_id``), or the month's global one to the público en general
    (``period``, its orders point at it). Kept for good: the operator's fiscal
    records (CFF art. 30); nothing deletes a stamped one.

    ``status`` goes ``stamping`` (signed, its XML stored, sent to the PAC) ->
    ``valid`` (stamped: ``uuid``, the stamped ``xml`` and its ``pdf``) ->
    ``cancelling`` (asked of the PAC) -> ``cancelled`` (or ``cancel_pending``
    while the receptor must accept). At most one live factura per order and per
    global period (:data:`INVOICE_LIVE`, partial unique indexes). ``replacing``
    marks one whose substitute is issued (motivo 01) until it is cancelled
    (``cancelling_01`` while that is asked of the PAC, ``pending_01`` while its
    receptor must accept): those are not live, their substitute is."""

    __tablename__ = "invoices"
    __table_args__ = (
        Index("uq_invoices_live_order", "order_id", unique=True,
              sqlite_where=text(INVOICE_LIVE), postgresql_where=text(INVOICE_LIVE)),
        Index("uq_invoices_live_period", "period", unique=True,
              sqlite_where=text(INVOICE_LIVE), postgresql_where=text(INVOICE_LIVE)),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), nullable=False)  # "order" | "global"
    order_id: Mapped[int | None] = mapped_column(
        ForeignKey("orders.id", ondelete="RESTRICT"), nullable=True, index=True)
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), nullable=True, index=True)
    #: "AAAA-MM" of a global invoice.
    period: Mapped[str | None] = mapped_column(String(7), nullable=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="stamping")
    serie: Mapped[str] = mapped_column(String(25), nullable=False)
    folio: Mapped[str] = mapped_column(String(40), nullable=False, default="")
    uuid: Mapped[str | None] = mapped_column(String(36), nullable=True, unique=True)
    pac: Mapped[str] = mapped_column(String(32), nullable=False)
    #: Stamped by the sandbox PAC: no validity before SAT.
    sandbox: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    receptor_rfc: Mapped[str] = mapped_column(String(13), nullable=False)
    receptor_nombre: Mapped[str] = mapped_column(String(300), nullable=False)
    uso_cfdi: Mapped[str] = mapped_column(String(4), nullable=False)
    forma_pago: Mapped[str] = mapped_column(String(2), nullable=False)
    subtotal_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    discount_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    tax_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    total_cents: Mapped[int] = mapped_column(BigInteger, nullable=False)
    #: The CFDI's Fecha (local time of the lugar de expedición, as in the XML).
    fecha: Mapped[str] = mapped_column(String(19), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    stamped_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    #: The signed CFDI while it is stamped, then the stamped one (with its timbre).
    xml: Mapped[str] = mapped_column(Text, nullable=False)
    pdf: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    #: The factura it replaces (motivo 01: its CfdiRelacionados, TipoRelacion 04).
    replaces_uuid: Mapped[str | None] = mapped_column(String(36), nullable=True)
    cancel_reason: Mapped[str | None] = mapped_column(String(2), nullable=True)
    cancel_replacement: Mapped[str | None] = mapped_column(String(36), nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    cancelled_by: Mapped[str | None] = mapped_column(String(160), nullable=True)
    #: The PAC's acknowledgement of the cancellation (acuse), as it returned it.
    cancel_ack: Mapped[str | None] = mapped_column(Text, nullable=True)
    mailed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
