"""A space's administration from the portal: who may administer it (the owner
account, an operator or an admin member), a drive user signing in to the
portal, the list of its users, inviting one and the e-mailed one-time link
with which a user sets their drive password.

Accounts, their one-time links and the spaces they own are
:mod:`spaces.commerce.accounts`.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from spaces.access import service
from spaces.commerce import accounts, notices
from spaces.core import audit
from spaces.core.db import Database
from spaces.core.errors import Forbidden, InvalidName, NotFound
from spaces.core.mail import Mailer
from spaces.core.models import Account, Member, Space, new_session_version
from spaces.core.passwords import hash_password, verify_password
from spaces.core.settings import Settings

log = logging.getLogger(__name__)


def can_admin(db: Database, space_name: str, *, account_id: int | None = None,
              member_id: int | None = None) -> bool:
    """The owner account, an operator, or a member with the admin role of that space."""
    with db.session() as s:
        space = s.scalar(select(Space).where(Space.name == space_name.strip().lower()))
        if space is None:
            return False
        if account_id is not None:
            a = s.get(Account, account_id)
            if a is not None and (a.is_operator or space.account_id == a.id):
                return True
        if member_id is not None:
            m = s.get(Member, member_id)
            return bool(m and m.space_id == space.id and m.role == "admin")
        return False


def authenticate_member(db: Database, space_name: str, username: str,
                        password: str) -> service.Credential | None:
    """A drive user logging in to the portal (the web drive, or a space admin who
    has no account): the credential if the password is right, the user is
    within the plan's users and the space is not suspended; None otherwise, at
    the same argon2 cost whether or not the user exists."""
    cred = service.find_credential(db, service.login_name(space_name),
                                   service.login_name(username))
    if not verify_password(password, cred.password_hash if cred else None) or cred is None:
        return None
    if not cred.within_user_limit or cred.space.status == "suspended":
        return None
    return cred


@dataclass(frozen=True)
class MemberRow:
    id: int
    username: str
    role: str
    email: str | None
    created_at: datetime


def member_rows(db: Database, space_name: str) -> list[MemberRow]:
    space = service.get_space(db, space_name)
    with db.session() as s:
        return [MemberRow(m.id, m.username, m.role, m.email, m.created_at) for m in s.scalars(
            select(Member).where(Member.space_id == space.id)
            .order_by(Member.created_at, Member.id))]


def invite_member(settings: Settings, db: Database, mailer: Mailer, links: notices.Links,
                  space_name: str, username: str, email: str, role: str,
                  *, actor: audit.Actor | None = None) -> None:
    """Add a user (never beyond the tier's limit, see service.add_member) and e-mail
    them a link to set their password."""
    e = accounts.normalize_email(email)
    m = service.add_member(db, space_name, username, secrets.token_urlsafe(32), role,
                           actor=actor)
    with db.session() as s:
        s.execute(update(Member).where(Member.id == m.id).values(email=e))
    send_member_link(settings, db, mailer, links, space_name, m.username)


def send_member_link(settings: Settings, db: Database, mailer: Mailer, links: notices.Links,
                     space_name: str, username: str) -> None:
    """E-mail a member a one-time link to (re)set their drive password."""
    with db.session() as s:
        row = s.execute(
            select(Member.id, Member.email, Space.name).join(Space, Space.id == Member.space_id)
            .where(Space.name == space_name.strip().lower())
            .where(Member.username == username.strip().lower())).one_or_none()
    if row is None:
        raise NotFound(f"No existe el usuario «{username}» en el espacio «{space_name}».")
    member_id, email, space = row
    if not email:
        raise InvalidName(f"El usuario «{username}» no tiene correo: agréguelo de nuevo con "
                          "su correo o cambie su contraseña con `resguardo user passwd`.")
    token = accounts.issue_token(db, settings, "member", member_id=member_id)
    accounts.send_quietly(mailer, notices.member_invite(
        email, space=space, user=username, drive_url=links.drive(space),
        link=links.member_password(token), hours=settings.portal.token_hours))


@dataclass(frozen=True)
class MemberLink:
    space: str
    username: str


def peek_member_link(db: Database, token: str) -> MemberLink | None:
    t = accounts.peek_token(db, token, "member")
    if t is None or t.member_id is None:
        return None
    with db.session() as s:
        row = s.execute(select(Member.username, Space.name).join(
            Space, Space.id == Member.space_id).where(Member.id == t.member_id)).one_or_none()
    return MemberLink(row[1], row[0]) if row else None


def set_member_password(db: Database, token: str, password: str,
                        *, address: str | None = None) -> MemberLink:
    """Spend a set-password link and set that drive user's password."""
    service.check_password(password)
    hashed = hash_password(password)
    with db.session() as s:
        t = accounts.spend_token(s, token, "member")
        if t is None or t.member_id is None:
            raise Forbidden(accounts.INVALID_LINK)
        m = s.get(Member, t.member_id)
        if m is None:
            raise Forbidden(accounts.INVALID_LINK)
        m.password_hash = hashed
        m.session_version = new_session_version()  # its older web sessions end
        space = s.get(Space, m.space_id)
        assert space is not None
        link = MemberLink(space.name, m.username)
        audit.record(s, space.id, audit.Action.PASSWORD_CHANGED,
                     actor=audit.Actor(m.username, address, "portal"), space_name=space.name,
                     detail=f"{m.username} (enlace por correo)")
    log.info("member password set by link: space=%s user=%s", link.space, link.username)
    return link
