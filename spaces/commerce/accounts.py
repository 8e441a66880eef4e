"""Portal accounts: sign-up, e-mail confirmation, login, passwords and e-mail
changes, one-time links, the spaces an account owns and the free space (once
per account, ever). The space admin's user management is
:mod:`spaces.commerce.space_admin`.

Functions that send e-mail take a :class:`~spaces.core.mail.Mailer` and the
:class:`~spaces.commerce.notices.Links` to put in it. Nothing here says whether an
account, a username or a space exists to someone who does not already know it:
sign-up with a known e-mail or a taken username, reset for an unknown e-mail and
a bad login all answer the same way after the same work; the e-mail, read only
by the mailbox's owner, says which it was.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from spaces.access import service, throttle
from spaces.cfdi.rfc import looks_like_rfc, normalize_rfc
from spaces.commerce import notices, rfc_claims
from spaces.core import audit, plans
from spaces.core.db import Database, affected
from spaces.core.errors import AlreadyExists, Forbidden, InvalidName, NotFound
from spaces.core.mail import Mail, Mailer, MailError
from spaces.core.models import Account, Member, OneTimeToken, Space, new_session_version, utcnow
from spaces.core.passwords import hash_password, verify_password
from spaces.core.settings import Settings
from spaces.files import layout

log = logging.getLogger(__name__)

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")


class FreeSpaceUnavailable(Forbidden):
    """The account has or had a space: the free one is not for it."""


@dataclass(frozen=True)
class AccountInfo:
    id: int
    username: str
    email: str
    rfc: str | None
    confirmed: bool
    ever_had_space: bool
    is_operator: bool
    created_at: datetime
    #: What a portal session of this account must carry (Account.session_version).
    session_version: str = ""
    #: ``rfc`` proven by a constancia an operator verified (see spaces.commerce.rfc_claims).
    rfc_verified: bool = False
    #: "none", "review" (a constancia waits for an operator), "verified", "rejected".
    rfc_status: str = "none"
    rfc_review_note: str | None = None

    @classmethod
    def of(cls, a: Account) -> AccountInfo:
        status = ("verified" if a.rfc_verified_at else "rejected" if a.rfc_review_note
                  else "review" if a.rfc_document else "none")
        return cls(a.id, a.username, a.email, a.rfc, a.email_confirmed_at is not None,
                   a.ever_had_space, a.is_operator, a.created_at, a.session_version,
                   a.rfc_verified_at is not None, status, a.rfc_review_note)


def normalize_account_username(name: str) -> str:
    """Account usernames can name a space and a drive user: 2-63 of a-z 0-9 _ -,
    not a reserved space name, and not shaped like an RFC (the free space takes
    the username: an RFC names a space only once proven, see spaces.commerce.rfc_claims)."""
    n = service.check_new_space_name(_username_shape(name))
    if looks_like_rfc(n):
        raise InvalidName("El usuario no puede tener la forma de un RFC. Para que su espacio "
                          "lleve su RFC, regístrese con otro usuario y verifique su RFC en "
                          "«Mi cuenta».")
    return n


def _username_shape(name: str) -> str:
    try:
        return service.normalize_space_name(name)
    except InvalidName:
        raise InvalidName(
            "El usuario debe tener de 2 a 63 letras sin acentos, números, guiones o guiones "
            "bajos, y empezar con letra o número (de preferencia, relacionado con el nombre "
            "de su empresa)."
        ) from None


def normalize_email(email: str) -> str:
    e = email.strip()
    if len(e) > 254 or not _EMAIL.match(e):
        raise InvalidName("Escriba un correo electrónico válido.")
    local, _, domain = e.rpartition("@")
    return f"{local}@{domain.lower()}"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def issue_token(db: Database, settings: Settings, purpose: str, *, account_id: int | None = None,
                member_id: int | None = None, data: str | None = None) -> str:
    token = secrets.token_urlsafe(32)
    with db.session() as s:
        s.add(OneTimeToken(
            token_hash=_digest(token), purpose=purpose, account_id=account_id,
            member_id=member_id, data=data,
            expires_at=utcnow() + timedelta(hours=settings.portal.token_hours)))
    return token


@dataclass(frozen=True)
class TokenInfo:
    purpose: str
    account_id: int | None
    member_id: int | None
    data: str | None


def peek_token(db: Database, token: str, purpose: str) -> TokenInfo | None:
    """The token if it is unspent and unexpired, without spending it (a GET shows
    the form; mail scanners that open links must not burn them)."""
    with db.session() as s:
        t = s.scalar(select(OneTimeToken).where(OneTimeToken.token_hash == _digest(token)))
        if t is None or t.purpose != purpose or t.used_at is not None \
                or t.expires_at <= utcnow():
            return None
        return TokenInfo(t.purpose, t.account_id, t.member_id, t.data)


def spend_token(s: Session, token: str, purpose: str) -> TokenInfo | None:
    """Spend the token inside the caller's transaction: its data if it was unspent,
    unexpired and for ``purpose``; None otherwise (it stays as it was)."""
    now = utcnow()
    t = s.scalar(select(OneTimeToken).where(OneTimeToken.token_hash == _digest(token)))
    if t is None or t.purpose != purpose:
        return None
    spent = affected(s.execute(
        update(OneTimeToken).where(OneTimeToken.id == t.id)
        .where(OneTimeToken.used_at.is_(None)).where(OneTimeToken.expires_at > now)
        .values(used_at=now)
    ))
    if spent != 1:
        return None
    return TokenInfo(t.purpose, t.account_id, t.member_id, t.data)


INVALID_LINK = ("El enlace no es válido, ya se usó o caducó. Pida uno nuevo.")


# -- sign-up, confirmation, login ----------------------------------------------------

def sign_up(settings: Settings, db: Database, mailer: Mailer, links: notices.Links,
            username: str, email: str, password: str, rfc: str = "") -> AccountInfo | None:
    """Open an account and e-mail its confirmation link.

    Answers alike whatever already exists, after the same work, so that an
    anonymous visitor learns nothing (the caller shows one "check your e-mail"
    page): the password is always hashed (argon2) and exactly one message goes
    to ``email``. It confirms the new account; or, when the e-mail already has
    an account, says so; or, when the username is taken by an account or a
    space (those the command line made included), says that no account was
    made. Returns the new account or None. Only what is wrong with the input
    itself (a malformed or reserved username, a bad e-mail, RFC or password)
    is an error, raised before anything is looked up.
    """
    u = normalize_account_username(username)
    e = normalize_email(email)
    r = normalize_rfc(rfc)
    service.check_password(password)
    hashed = hash_password(password)  # always: the same cost on every path
    taken = "email"
    info: AccountInfo | None = None
    try:
        with db.session() as s:
            if s.scalar(select(Account.id).where(Account.email == e)) is not None:
                taken = "email"
            elif (s.scalar(select(Account.id).where(Account.username == u)) is not None
                  or s.scalar(select(Space.id).where(Space.name == u)) is not None):
                taken = "username"
            else:
                a = Account(username=u, email=e, password_hash=hashed, rfc=r,
                            ever_had_space=False, is_operator=False)
                s.add(a)
                s.flush()
                info = AccountInfo.of(a)
    except IntegrityError:
        # Lost a race for the e-mail or the username: answer as if it had been seen.
        with db.session() as s:
            taken = ("email" if s.scalar(select(Account.id).where(Account.email == e))
                     is not None else "username")
        info = None
    if info is not None:
        log.info("account created: user=%s", u)
        send_confirmation(settings, db, mailer, links, info)
        return info
    if taken == "email":
        log.info("sign-up with a registered e-mail: %s", e)
        send_quietly(mailer, notices.already_registered(e, links.home() + "cuenta/entrar",
                                                        links.home() + "cuenta/olvide"))
    else:
        log.info("sign-up with a username in use: user=%s", u)
        send_quietly(mailer, notices.username_taken(e, u, links.home() + "cuenta/registro"))
    return None


def send_confirmation(settings: Settings, db: Database, mailer: Mailer, links: notices.Links,
                      account: AccountInfo) -> None:
    token = issue_token(db, settings, "confirm", account_id=account.id, data=account.email)
    send_quietly(mailer, notices.confirm_email(account.email, account.username,
                                               links.confirm(token), settings.portal.token_hours))


def confirm_email(db: Database, token: str) -> AccountInfo:
    with db.session() as s:
        t = spend_token(s, token, "confirm")
        if t is None or t.account_id is None:
            raise Forbidden(INVALID_LINK)
        a = s.get(Account, t.account_id)
        if a is None or a.email != t.data:
            raise Forbidden(INVALID_LINK)
        a.email_confirmed_at = a.email_confirmed_at or utcnow()
        s.flush()
        return AccountInfo.of(a)


def authenticate(db: Database, login: str, password: str) -> AccountInfo | None:
    """The account whose username or e-mail is ``login`` if ``password`` is right;
    None otherwise, at the same argon2 cost whether or not the account exists."""
    key = login.strip()
    with db.session() as s:
        a = s.scalar(select(Account).where(
            (Account.username == key.lower()) | (Account.email == _email_key(key))))
        info = AccountInfo.of(a) if a else None
        hashed = a.password_hash if a else None
    if not verify_password(password, hashed):
        return None
    return info


def login_subject(db: Database, login: str) -> throttle.Subject:
    """The brute-force subject of a portal login: the account it names (by
    username or e-mail alike, so both spellings share one pause), or the login
    as typed when it names none."""
    key = login.strip()
    with db.session() as s:
        account_id = s.scalar(select(Account.id).where(
            (Account.username == key.lower()) | (Account.email == _email_key(key))))
    return throttle.account(f"id:{account_id}" if account_id is not None
                            else f"login:{key.lower()}")


def _email_key(text: str) -> str:
    try:
        return normalize_email(text)
    except InvalidName:
        return text


def get_account(db: Database, account_id: int) -> AccountInfo:
    with db.session() as s:
        a = s.get(Account, account_id)
        if a is None:
            raise NotFound("La cuenta no existe.")
        return AccountInfo.of(a)


def end_account_sessions(db: Database, account_id: int) -> None:
    """Log the account out everywhere: every session made so far stops working."""
    with db.session() as s:
        s.execute(update(Account).where(Account.id == account_id)
                  .values(session_version=new_session_version()))
    log.info("account sessions ended: id=%s", account_id)


def end_member_sessions(db: Database, member_id: int) -> None:
    """Log a drive user out of the portal everywhere (the drive itself uses its
    password on every request)."""
    with db.session() as s:
        s.execute(update(Member).where(Member.id == member_id)
                  .values(session_version=new_session_version()))
    log.info("member web sessions ended: id=%s", member_id)


def request_password_reset(settings: Settings, db: Database, mailer: Mailer,
                           links: notices.Links, email: str) -> None:
    """E-mail a reset link if an account has ``email``; otherwise a message saying no
    account uses it (a malformed address gets nothing: the form refuses it)."""
    try:
        e = normalize_email(email)
    except InvalidName:
        return
    with db.session() as s:
        a = s.scalar(select(Account).where(Account.email == e))
        info = AccountInfo.of(a) if a else None
    if info is None:
        # The same work as for an account (one message), so the answer's time does
        # not tell whether the address has one; only its owner reads which it was.
        log.info("password reset for an unknown e-mail")
        send_quietly(mailer, notices.no_account(e, links.home() + "cuenta/registro"))
        return
    token = issue_token(db, settings, "reset", account_id=info.id)
    send_quietly(mailer, notices.reset_password(info.email, info.username, links.reset(token),
                                                settings.portal.token_hours))


def reset_password(db: Database, token: str, password: str) -> AccountInfo:
    service.check_password(password)
    hashed = hash_password(password)
    with db.session() as s:
        t = spend_token(s, token, "reset")
        if t is None or t.account_id is None:
            raise Forbidden(INVALID_LINK)
        a = s.get(Account, t.account_id)
        if a is None:
            raise Forbidden(INVALID_LINK)
        a.password_hash = hashed
        a.session_version = new_session_version()  # every older session ends
        # Receiving the link proves the address too.
        a.email_confirmed_at = a.email_confirmed_at or utcnow()
        s.flush()
        return AccountInfo.of(a)


def change_password(db: Database, account_id: int, current: str, new: str) -> str:
    """Change the password (Forbidden unless ``current`` is right). Every session
    of the account ends; returns the new session version, for the caller's own."""
    with db.session() as s:
        a = s.get(Account, account_id)
        hashed = a.password_hash if a else None
    if not verify_password(current, hashed):
        raise Forbidden("La contraseña actual no es correcta.")
    service.check_password(new)
    new_hash = hash_password(new)
    version = new_session_version()  # every other session of the account ends
    with db.session() as s:
        s.execute(update(Account).where(Account.id == account_id)
                  .values(password_hash=new_hash, session_version=version))
    log.info("account password changed: id=%s", account_id)
    return version


def request_email_change(settings: Settings, db: Database, mailer: Mailer, links: notices.Links,
                         account_id: int, password: str, new_email: str) -> None:
    """Send a confirmation link to ``new_email``; the address changes only when it
    is opened. Silently does nothing more if the address belongs to another account."""
    e = normalize_email(new_email)
    with db.session() as s:
        a = s.get(Account, account_id)
        if a is None:
            raise NotFound("La cuenta no existe.")
        hashed, username = a.password_hash, a.username
        taken = s.scalar(select(Account.id).where(Account.email == e)) is not None
    if not verify_password(password, hashed):
        raise Forbidden("La contraseña actual no es correcta.")
    if taken:
        return
    token = issue_token(db, settings, "email", account_id=account_id, data=e)
    send_quietly(mailer, notices.email_change(e, username, links.email_change(token),
                                              settings.portal.token_hours))


def confirm_email_change(db: Database, token: str) -> AccountInfo:
    try:
        with db.session() as s:
            t = spend_token(s, token, "email")
            if t is None or t.account_id is None or not t.data:
                raise Forbidden(INVALID_LINK)
            a = s.get(Account, t.account_id)
            if a is None:
                raise Forbidden(INVALID_LINK)
            a.email = t.data
            a.email_confirmed_at = utcnow()
            s.flush()
            return AccountInfo.of(a)
    except IntegrityError:
        raise AlreadyExists("Ese correo ya pertenece a otra cuenta.") from None


def create_operator(db: Database, username: str, email: str, password: str) -> AccountInfo:
    """A site-wide administrator (``resguardo admin create``); confirmed at once.
    Its username names no space, so a reserved one ("root") is fine."""
    u = _username_shape(username)
    e = normalize_email(email)
    service.check_password(password)
    try:
        with db.session() as s:
            a = Account(username=u, email=e, password_hash=hash_password(password),
                        ever_had_space=False, is_operator=True,
                        email_confirmed_at=utcnow())
            s.add(a)
            s.flush()
            return AccountInfo.of(a)
    except IntegrityError:
        raise AlreadyExists(f"Ya existe una cuenta con el usuario «{u}» o el correo «{e}».") \
            from None


def list_accounts(db: Database, search: str = "") -> list[AccountInfo]:
    with db.session() as s:
        q = select(Account).order_by(Account.created_at.desc(), Account.id.desc())
        if search:
            like = f"%{search.strip().lower()}%"
            q = q.where(Account.username.like(like) | Account.email.like(like)
                        | Account.rfc.like(like.upper()))
        return [AccountInfo.of(a) for a in s.scalars(q.limit(500))]


# -- spaces owned by accounts ----------------------------------------------------------

def owned_spaces(db: Database, account_id: int) -> list[service.SpaceInfo]:
    with db.session() as s:
        return [service.SpaceInfo.of(x) for x in s.scalars(
            select(Space).where(Space.account_id == account_id).order_by(Space.name))]


def create_owned_space(s: Session, settings: Settings, account: Account, name: str,
                       tier_name: str) -> tuple[Space, Member]:
    """Inside the caller's transaction: a space owned by ``account`` with the
    account's username as its first (admin) user. The user gets an unguessable
    password nobody knows; the owner sets a real one from the e-mailed link.
    Marks the account as having had a space. AlreadyExists if the name is taken."""
    n = service.check_new_space_name(name)
    t = plans.get_tier(settings, tier_name)
    if s.scalar(select(Space.id).where(Space.name == n)) is not None:
        raise AlreadyExists(f"Ya existe un espacio llamado «{n}».")
    space = Space(name=n, used_bytes=0, used_files=0, status="active",
                  owner_email=account.email, account_id=account.id)
    service.apply_tier(space, t)  # every limit of the plan, entries and depth included
    s.add(space)
    s.flush()
    member = Member(space_id=space.id, username=account.username, role="admin",
                    password_hash=hash_password(secrets.token_urlsafe(32)),
                    email=account.email)
    s.add(member)
    account.ever_had_space = True
    s.flush()
    who = audit.Actor(f"account:{account.username}", None, "portal")
    audit.record(s, space.id, audit.Action.SPACE_CREATED, actor=who, space_name=n,
                 detail=f"plan {t.name}")
    audit.record(s, space.id, audit.Action.MEMBER_ADDED, actor=who, space_name=n,
                 detail=f"{account.username} (admin)")
    return space, member


def send_access_data(settings: Settings, db: Database, mailer: Mailer, links: notices.Links,
                     space: service.SpaceInfo, member_id: int, username: str,
                     email: str, changed: bool = False) -> None:
    token = issue_token(db, settings, "member", member_id=member_id)
    send_quietly(mailer, notices.access_data(
        email, space=space.name, tier=space.tier, quota_bytes=space.quota_bytes,
        drive_url=links.drive(space.name), user=username, link=links.member_password(token),
        hours=settings.portal.token_hours, paid_until=space.paid_until, changed=changed))


def claim_free_space(settings: Settings, db: Database, mailer: Mailer, links: notices.Links,
                     account_id: int) -> service.SpaceInfo:
    """Create the free space (named after the username) for an account that never
    had any space, and e-mail its access data.

    Once per account, ever: the claim is a conditional UPDATE of
    ``ever_had_space`` in the same transaction as the space, so of two
    simultaneous clicks exactly one creates a space and the other gets
    FreeSpaceUnavailable. Nothing is left behind if the space cannot be created.
    """
    tier = plans.free_tier(settings)
    with db.session() as s:
        won = affected(s.execute(
            update(Account).where(Account.id == account_id)
            .where(Account.ever_had_space.is_(False))
            .where(Account.email_confirmed_at.is_not(None))
            .values(ever_had_space=True)
        )) == 1
        if not won:
            raise FreeSpaceUnavailable(
                "El espacio gratuito es sólo para cuentas confirmadas que nunca han tenido "
                "un espacio. Puede contratar un plan en «Actualizar modalidad».")
        account = s.get(Account, account_id)
        assert account is not None
        # An RFC-shaped username (from before they were refused) names no space unproven.
        rfc_claims.check_may_name(account.rfc, account.rfc_verified_at is not None,
                                  account.username)
        try:
            space, member = create_owned_space(s, settings, account, account.username,
                                               tier.name)
        except IntegrityError:
            raise AlreadyExists(f"Ya existe un espacio llamado «{account.username}».") \
                from None
        info = service.SpaceInfo.of(space)
        member_id, username, email = member.id, account.username, account.email
    layout.ensure_space_dirs(settings, info.name)
    log.info("free space claimed: account=%s space=%s tier=%s", account_id, info.name,
             info.tier)
    send_access_data(settings, db, mailer, links, info, member_id, username, email)
    return info


def send_quietly(mailer: Mailer, mail: Mail) -> None:
    """Send, and let the action stand if the mail server is down: the error is
    logged by the mailer and the customer can ask for the link again."""
    try:
        mailer.send(mail)
    except MailError:
        pass

