"""Spaces and their members: creation, tiers, users and the user limit."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Float, Select, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from spaces.cfdi import retention
from spaces.core import audit, plans
from spaces.core.audit import Action, Actor
from spaces.core.db import Database
from spaces.core.errors import (
    AlreadyExists,
    Forbidden,
    InvalidName,
    NotFound,
    ReadOnlySpace,
    UserLimitReached,
)
from spaces.core.models import (
    LoginFailure,
    Member,
    ShareLink,
    Space,
    new_session_version,
    utcnow,
)
from spaces.core.passwords import MIN_PASSWORD_LENGTH, hash_password
from spaces.core.settings import Settings
from spaces.files import layout, quota

log = logging.getLogger(__name__)

ROLES = ("admin", "editor", "reader")
WRITER_ROLES = frozenset({"admin", "editor"})


def may_write(role: str) -> bool:
    """Whether a member with ``role`` may change files (the drive and the web drive)."""
    return role in WRITER_ROLES


def check_may_write(role: str, username: str, space_status: str) -> None:
    """Raise Forbidden (403) with the Spanish reason unless ``role`` may write
    in a space whose status is ``space_status``: a read-only or suspended space
    (ReadOnlySpace) refuses every change, whoever asks.

    The one rule for every way into a space's files: the WebDAV drive refuses
    write methods with it and the web drive refuses its write actions."""
    if space_status != "active":
        raise ReadOnlySpace(space_status)
    if not may_write(role):
        raise Forbidden(
            f"Su usuario '{username}' tiene permiso solo de lectura en este espacio; "
            "pida a un administrador del espacio que le dé permiso de edición.")

_SPACE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{1,62}$")
_USER_NAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")


@dataclass(frozen=True)
class SpaceInfo:
    """A snapshot of a space, safe to pass between threads."""

    id: int
    name: str
    tier: str
    quota_bytes: int
    max_users: int | None
    used_bytes: int
    used_files: int
    status: str
    owner_email: str | None
    paid_until: date | None
    #: The safety reserve (trash and earlier versions, outside the plan) and
    #: what it holds.
    reserve_bytes: int = 0
    held_bytes: int = 0
    held_files: int = 0
    #: The plan's deepest path (0: not read with this snapshot).
    max_depth: int = 0

    @property
    def usage(self) -> quota.Usage:
        """Its counters as of this snapshot."""
        return quota.Usage(self.used_bytes, self.used_files, self.quota_bytes,
                           self.held_bytes, self.held_files, self.reserve_bytes)

    @classmethod
    def of(cls, s: Space) -> SpaceInfo:
        return cls(s.id, s.name, s.tier, s.quota_bytes, s.max_users, s.used_bytes,
                   s.used_files, s.status, s.owner_email, s.paid_until, s.reserve_bytes,
                   s.held_bytes, s.held_files, s.max_depth)


def normalize_space_name(name: str) -> str:
    """Space names are case-insensitive: an RFC or a username, stored lower case."""
    n = name.strip().lower()
    if not _SPACE_NAME.match(n):
        raise InvalidName(
            f"Nombre de espacio no válido: '{name}'. Use de 2 a 63 letras sin acentos, "
            "números, guiones o guiones bajos (por ejemplo su RFC o su usuario)."
        )
    return n


#: Names no space may take: every path segment of the server's own routes (a
#: space called "entrar" would shadow /unidad/entrar, one called "healthz" the
#: health check) and names that would pass for the service itself. Checked
#: wherever a space is born or named (CLI, API, purchase, free space, and the
#: account username, which names the free space: :func:`check_new_space_name`);
#: spaces that already have such a name keep it. A test keeps the list in step
#: with the portal's routes.
RESERVED_SPACE_NAMES = frozenset({
    # the server's dispatcher and operations
    "api", "dav", "healthz", "metrics", "static", "webdav",
    # the portal's routes, every segment
    "acceso", "activar", "aprobar", "bitacora", "bloqueos", "borrar", "cambiar",
    "cambiar-correo", "cancelar", "carpeta", "carrito", "cfdi", "compartido", "confirmar",
    "contrato", "crear", "cuenta", "descargar", "desglose", "eliminar", "enlaces", "entrar",
    "entrar-unidad", "espacio-gratis", "espacios", "factura", "facturas", "fiscal", "global",
    "idioma", "liberar", "listo", "mover", "olvide", "operador", "pagar", "pago", "pagos",
    "papelera", "pedido", "pedidos", "planes", "quitar", "rechazar", "recibo", "reembolsos",
    "registro", "renombrar", "restablecer", "restaurar", "revise-su-correo", "revocar", "rfc",
    "salir", "sandbox", "subir", "tokens", "unidad", "usuarios", "vaciar", "versiones",
    "webhook",
    # what would pass for the service or its staff
    "admin", "administrador", "administrator", "ayuda", "help", "login", "logout",
    "operator", "resguardo", "root", "sistema", "soporte", "support", "system", "www",
})


def check_new_space_name(name: str) -> str:
    """The normalised name for a new space; InvalidName if it is malformed or
    reserved (:data:`RESERVED_SPACE_NAMES`)."""
    n = normalize_space_name(name)
    if n in RESERVED_SPACE_NAMES:
        raise InvalidName(f"El nombre «{n}» está reservado para el servicio; elija otro.")
    return n


def login_name(typed: str) -> str:
    """A space or user name as typed at a login, the way every door looks it up
    (and counts its failures: :mod:`spaces.access.throttle`): trimmed, lower case, and
    without the ``DOMAIN\\`` Windows puts before a user name."""
    n = typed.strip().lower()
    if "\\" in n:
        n = n.rsplit("\\", 1)[1].strip()
    return n


def normalize_username(name: str) -> str:
    n = name.strip().lower()
    if not _USER_NAME.match(n):
        raise InvalidName(
            f"Nombre de usuario no válido: '{name}'. Use letras sin acentos, números, "
            "punto, guion, guion bajo o arroba (máximo 64)."
        )
    return n


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidName(
            f"La contraseña debe tener al menos {MIN_PASSWORD_LENGTH} caracteres."
        )


def create_space(
    settings: Settings, db: Database, name: str, tier: str, owner_email: str | None = None,
    *, actor: Actor | None = None,
) -> SpaceInfo:
    """Create a space of ``tier`` and its folders. AlreadyExists if the name is
    taken, InvalidName if it is malformed or reserved."""
    n = check_new_space_name(name)
    t = plans.get_tier(settings, tier)
    try:
        with db.session() as s:
            space = Space(name=n, used_bytes=0, used_files=0, status="active",
                          owner_email=owner_email)
            apply_tier(space, t)
            s.add(space)
            s.flush()
            info = SpaceInfo.of(space)
            audit.record(s, info.id, Action.SPACE_CREATED, actor=actor, space_name=n,
                         detail=f"plan {t.name}")
    except IntegrityError:
        raise AlreadyExists(f"Ya existe un espacio llamado '{n}'.") from None
    layout.ensure_space_dirs(settings, n)
    log.info("space created: space=%s tier=%s", n, t.name)
    return info


def get_space(db: Database, name: str) -> SpaceInfo:
    with db.session() as s:
        space = s.scalar(select(Space).where(Space.name == name.strip().lower()))
        if space is None:
            raise NotFound(f"No existe el espacio '{name}'.")
        return SpaceInfo.of(space)


def list_spaces(db: Database) -> list[SpaceInfo]:
    with db.session() as s:
        return [SpaceInfo.of(x) for x in s.scalars(select(Space).order_by(Space.name))]


def change_tier(settings: Settings, db: Database, name: str, tier: str,
                *, actor: Actor | None = None) -> SpaceInfo:
    """Change a space's tier (quota, reserve, users, entries, depth). No file in
    use is deleted: a space left above its new quota refuses writes (507)
    until usage fits; a trash or versions above its new reserve are trimmed
    at once, oldest first (:func:`fit_reserve`); extra users beyond the new
    limit cannot log in (newest first) until some are removed."""
    t = plans.get_tier(settings, tier)
    with db.session() as s:
        space = s.scalar(select(Space).where(Space.name == name.strip().lower()))
        if space is None:
            raise NotFound(f"No existe el espacio '{name}'.")
        old = space.tier
        apply_tier(space, t)
        s.flush()
        info = SpaceInfo.of(space)
        if old != t.name:
            audit.record(s, info.id, Action.TIER_CHANGED, actor=actor, space_name=info.name,
                         detail=f"{old} -> {t.name}")
    # CFDI already stored get the new tier's period if it is longer; never shorter.
    retention.extend_for_tier(settings, db, info.id, t.name)
    fit_reserve(settings, db, info.id, info.name, actor=actor)
    return get_space(db, info.name)


def apply_tier(space: Space, t: plans.Tier) -> None:
    """Give ``space`` every limit of plan ``t`` (quota, users, reserve, entries,
    depth): the one place a space's plan is written, when it is created (CLI,
    API, purchase, free space) and when it changes (CLI, API, operator,
    payment). After a change the caller commits, then runs :func:`fit_reserve`."""
    space.tier, space.quota_bytes, space.max_users = t.name, t.quota_bytes, t.max_users
    space.reserve_bytes = t.reserve_bytes
    space.max_entries, space.max_depth = t.max_entries, t.max_depth


def restore_missing_limits(settings: Settings, db: Database) -> list[str]:
    """Spaces without an entry limit (``max_entries`` 0: the portal created
    them so before it gave every limit of the plan; a plan's own limit is never
    0) get their plan's entries and depth. Run at start-up; returns their
    names. A space whose plan is no longer configured is left as it is, and
    logged."""
    fixed = []
    with db.session() as s:
        for space in s.scalars(select(Space).where(Space.max_entries <= 0)):
            try:
                t = plans.get_tier(settings, space.tier)
            except NotFound:
                log.warning("space without an entry limit and an unknown plan: space=%s "
                            "tier=%s", space.name, space.tier)
                continue
            space.max_entries, space.max_depth = t.max_entries, t.max_depth
            fixed.append(space.name)
            log.warning("space given its plan's limits: space=%s max_entries=%d max_depth=%d",
                        space.name, t.max_entries, t.max_depth)
    return fixed


def fit_reserve(settings: Settings, db: Database, space_id: int, space_name: str,
                *, actor: Actor | None = None) -> None:
    """After a plan change: erase the oldest versions, then the oldest trash
    items, until what the space holds fits its (perhaps smaller) reserve, so
    disk use stays within quota + reserve at once, not only from the next
    delete (:func:`spaces.files.trash.make_room`, under the space's guard)."""
    from spaces.access.files import space_files
    from spaces.files import trash

    files = space_files(settings, db, space_id, space_name, actor=actor)
    with files.guard():
        trash.make_room(files, 0)


_STATUS_ACTIONS = {"active": Action.REACTIVATED, "readonly": Action.READ_ONLY,
                   "suspended": Action.SUSPENDED}


def set_status(db: Database, name: str, status: str, *, actor: Actor | None = None,
               reason: str | None = None) -> SpaceInfo:
    """Set a space's status; a change is audited (suspended, reactivated, read-only).
    Suspending also ends every web session of the space's users."""
    if status not in ("active", "readonly", "suspended"):
        raise InvalidName(f"Estado no válido: {status}")
    with db.session() as s:
        space = s.scalar(select(Space).where(Space.name == name.strip().lower()))
        if space is None:
            raise NotFound(f"No existe el espacio '{name}'.")
        old = space.status
        space.status = status
        s.flush()
        if status == "suspended" and old != status:
            # Every web session of its users ends, and stays ended after reactivation.
            s.execute(update(Member).where(Member.space_id == space.id)
                      .values(session_version=new_session_version()))
        if old != status:
            audit.record(s, space.id, _STATUS_ACTIONS[status], actor=actor,
                         space_name=space.name, detail=f"{old} -> {status}"
                         + (f" ({reason})" if reason else ""))
        return SpaceInfo.of(space)


# -- members ---------------------------------------------------------------------

@dataclass(frozen=True)
class MemberInfo:
    id: int
    space_id: int
    username: str
    role: str


def list_members(db: Database, space_name: str) -> list[MemberInfo]:
    space = get_space(db, space_name)
    with db.session() as s:
        rows = s.scalars(
            select(Member).where(Member.space_id == space.id).order_by(Member.created_at,
                                                                       Member.id)
        )
        return [MemberInfo(m.id, m.space_id, m.username, m.role) for m in rows]


def add_member(
    db: Database, space_name: str, username: str, password: str, role: str = "editor",
    *, actor: Actor | None = None,
) -> MemberInfo:
    """Add a user to a space, never beyond its tier's user limit.

    The count and the insert run in one transaction that first takes a write
    lock on the space row, so two simultaneous additions cannot both pass the
    limit check.
    """
    u = normalize_username(username)
    if role not in ROLES:
        raise InvalidName(f"Rol no válido: '{role}'. Use admin, editor o reader.")
    check_password(password)
    hashed = hash_password(password)
    try:
        with db.session() as s:
            space = s.scalar(
                select(Space).where(Space.name == space_name.strip().lower()).with_for_update()
            )
            if space is None:
                raise NotFound(f"No existe el espacio '{space_name}'.")
            if db.is_sqlite:
                # SQLite has no row locks: take the database write lock now.
                s.execute(update(Space).where(Space.id == space.id)
                          .values(max_users=Space.max_users))
            count = s.scalar(select(func.count()).where(Member.space_id == space.id)) or 0
            if space.max_users is not None and count >= space.max_users:
                raise UserLimitReached(
                    f"El espacio '{space.name}' ya tiene {count} de {space.max_users} "
                    f"usuarios que permite su plan {space.tier}. Elimine un usuario o "
                    "cambie a un plan mayor."
                )
            m = Member(space_id=space.id, username=u, password_hash=hashed, role=role)
            s.add(m)
            s.flush()
            info = MemberInfo(m.id, m.space_id, m.username, m.role)
            audit.record(s, space.id, Action.MEMBER_ADDED, actor=actor, space_name=space.name,
                         detail=f"{u} ({role})")
    except IntegrityError:
        raise AlreadyExists(f"El usuario '{u}' ya existe en el espacio '{space_name}'.") from None
    log.info("member added: space=%s user=%s role=%s", space_name, u, role)
    return info


def set_password(db: Database, space_name: str, username: str, password: str,
                 *, actor: Actor | None = None) -> None:
    check_password(password)
    hashed = hash_password(password)
    with db.session() as s:
        m = _member(s, space_name, username)
        m.password_hash = hashed
        m.session_version = new_session_version()  # its web sessions end
        audit.record(s, m.space_id, Action.PASSWORD_CHANGED, actor=actor, detail=m.username)


def set_role(db: Database, space_name: str, username: str, role: str,
             *, actor: Actor | None = None) -> None:
    if role not in ROLES:
        raise InvalidName(f"Rol no válido: '{role}'. Use admin, editor o reader.")
    with db.session() as s:
        m = _member(s, space_name, username)
        old, m.role = m.role, role
        if old != role:
            audit.record(s, m.space_id, Action.ROLE_CHANGED, actor=actor,
                         detail=f"{m.username}: {old} -> {role}")


def remove_member(db: Database, space_name: str, username: str,
                  *, actor: Actor | None = None) -> None:
    """Remove a user: out at once through every door (its web sessions and the
    share links it made end with it)."""
    with db.session() as s:
        m = _member(s, space_name, username)
        audit.record(s, m.space_id, Action.MEMBER_REMOVED, actor=actor,
                     detail=f"{m.username} ({m.role})")
        # What a removed user shared stops opening with them (their web sessions
        # end with the row: a session names the member's id and version).
        s.execute(update(ShareLink).where(ShareLink.space_id == m.space_id)
                  .where(ShareLink.created_by == m.username)
                  .where(ShareLink.revoked_at.is_(None)).values(revoked_at=utcnow()))
        s.delete(m)
    log.info("member removed: space=%s user=%s", space_name, username)


def _member(s, space_name: str, username: str) -> Member:  # type: ignore[no-untyped-def]
    m = s.scalar(
        select(Member).join(Space, Space.id == Member.space_id)
        .where(Space.name == space_name.strip().lower())
        .where(Member.username == username.strip().lower())
    )
    if m is None:
        raise NotFound(f"No existe el usuario '{username}' en el espacio '{space_name}'.")
    return m


@dataclass(frozen=True)
class Credential:
    """What the drive needs to admit a user: looked up once per request."""

    space: SpaceInfo
    member_id: int
    username: str
    role: str
    password_hash: str
    within_user_limit: bool
    #: What a portal session of this member must carry (Member.session_version).
    session_version: str = ""
    #: Whether a login pause holds the user or its address (see find_credential).
    paused: bool = False


def _credential_statement() -> Select[*tuple[Any, ...]]:
    """One query for the member, its space, how many members are older and
    whether a login pause holds it: the
    drive runs it on every request, so it is built once and reused (SQLAlchemy
    then skips building and compiling it again)."""
    other = aliased(Member)
    older = (select(func.count()).select_from(other)
             .where(other.space_id == Member.space_id)
             .where((other.created_at < Member.created_at)
                    | ((other.created_at == Member.created_at) & (other.id < Member.id)))
             .correlate(Member).scalar_subquery())
    # Whether the brute-force pause (spaces.access.throttle) holds this user or address:
    # asked in the same query, so the drive pays no second round trip for it.
    paused = (select(func.count()).select_from(LoginFailure)
              .where(LoginFailure.subject.in_([bindparam("pause_a"), bindparam("pause_b")]),
                     LoginFailure.blocked_until > bindparam("now", type_=Float))
              .scalar_subquery())
    return (select(Space.id, Space.name, Space.tier, Space.quota_bytes, Space.max_users,
                   Space.used_bytes, Space.used_files, Space.status, Space.owner_email,
                   Space.paid_until, Space.reserve_bytes, Space.held_bytes,
                   Space.held_files, Space.max_depth, Member.id, Member.username, Member.role,
                   Member.password_hash, older, Member.session_version, paused)
            .join(Space, Space.id == Member.space_id)
            .where(Space.name == bindparam("space_name"))
            .where(Member.username == bindparam("username")))


_CREDENTIAL = _credential_statement()


def find_credential(db: Database, space_name: str, username: str, *,
                    pauses: tuple[str, str] = ("", ""), now: float | None = None
                    ) -> Credential | None:
    """The member ``username`` of ``space_name`` with its space, or None.

    ``within_user_limit`` is False for the newest members beyond the tier's
    limit (after a downgrade): they cannot log in until others are removed.
    ``paused`` says whether either of the ``pauses`` (digests of
    :class:`spaces.access.throttle.Subject`: the user and its address) is paused at
    ``now`` (epoch seconds, default the clock).
    """
    row = db.first_row(_CREDENTIAL, {"space_name": space_name, "username": username,
                                     "pause_a": pauses[0], "pause_b": pauses[1],
                                     "now": time.time() if now is None else now})
    if row is None:
        return None
    (sid, name, tier, quota_bytes, max_users, used_bytes, used_files, status, owner_email,
     paid_until, reserve_bytes, held_bytes, held_files, max_depth, member_id, uname, role,
     password_hash, older, session_version, paused) = row
    space = SpaceInfo(sid, name, tier, quota_bytes, max_users, used_bytes, used_files, status,
                      owner_email, paid_until, reserve_bytes, held_bytes, held_files, max_depth)
    within = max_users is None or (older or 0) < max_users
    return Credential(space, member_id, uname, role, password_hash, within, session_version,
                      bool(paused))
