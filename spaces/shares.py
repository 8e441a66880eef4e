"""Share links: a read-only link to a file or folder of a space.

Optional per space (``Space.share_links_enabled``, off until a space admin
turns it on). A link has an expiry (at most :data:`MAX_DAYS`) and optionally a
password. The token is random (``secrets.token_urlsafe``) and only its SHA-256
is stored, so a database dump opens nothing; the password is an argon2 hash
like members'. A link that expired, was revoked or whose space turned links
off is :class:`Gone` (410); one that never existed is NotFound (404).

Links only read: whoever opens one downloads the file, or browses and
downloads (ZIP) the folder, through the same ``SpaceFiles.resolve`` and
listing functions as the web drive, confined to the shared path.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from spaces.db import Database, affected
from spaces.errors import Forbidden, InvalidName, NotFound, SpaceError
from spaces.models import ShareLink, Space, utcnow
from spaces.passwords import MIN_PASSWORD_LENGTH, hash_password, verify_password

log = logging.getLogger(__name__)

#: Longest a link may live.
MAX_DAYS = 90
DEFAULT_DAYS = 7


class Gone(SpaceError):
    """The link expired or was revoked."""

    status = 410


@dataclass(frozen=True)
class ShareInfo:
    id: int
    space_id: int
    path: str
    is_dir: bool
    has_password: bool
    created_by: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    downloads: int

    @property
    def active(self) -> bool:
        return self.revoked_at is None and self.expires_at > utcnow()

    @classmethod
    def of(cls, s: ShareLink) -> ShareInfo:
        return cls(s.id, s.space_id, s.path, s.is_dir, s.password_hash is not None,
                   s.created_by, s.created_at, s.expires_at, s.revoked_at, s.downloads)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def enabled(db: Database, space_id: int) -> bool:
    with db.session() as s:
        return bool(s.scalar(select(Space.share_links_enabled).where(Space.id == space_id)))


def set_enabled(db: Database, space_id: int, on: bool) -> None:
    """Turn the space's share links on or off. Off also stops existing links
    (they answer 410 until it is turned on again, unless they expired)."""
    with db.session() as s:
        s.execute(update(Space).where(Space.id == space_id)
                  .values(share_links_enabled=bool(on)))
    log.info("share links %s: space_id=%s", "enabled" if on else "disabled", space_id)


def create(db: Database, space_id: int, path: str, *, is_dir: bool, created_by: str,
           days: int = DEFAULT_DAYS, password: str = "") -> tuple[str, ShareInfo]:
    """A new link to ``path`` ('/a/b', already resolved by the caller) for ``days``
    days. Returns (token, info): the token is shown once and never stored.
    Forbidden when the space has links turned off."""
    if not 1 <= days <= MAX_DAYS:
        raise InvalidName(f"La vigencia debe ser de 1 a {MAX_DAYS} días.")
    if password and len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidName(
            f"La contraseña del enlace debe tener al menos {MIN_PASSWORD_LENGTH} caracteres.")
    if path == "/" or not path.startswith("/"):
        raise Forbidden("No se puede compartir la raíz del espacio; elija una carpeta.")
    if not enabled(db, space_id):
        raise Forbidden("Los enlaces para compartir están desactivados en este espacio; "
                        "un administrador del espacio puede activarlos.")
    token = secrets.token_urlsafe(24)
    with db.session() as s:
        link = ShareLink(space_id=space_id, token_hash=_digest(token), path=path,
                         is_dir=is_dir, password_hash=hash_password(password) if password
                         else None, created_by=created_by,
                         expires_at=utcnow() + timedelta(days=days), downloads=0)
        s.add(link)
        s.flush()
        info = ShareInfo.of(link)
    log.info("share link created: space_id=%s path=%s by=%s days=%d password=%s",
             space_id, path, created_by, days, bool(password))
    return token, info


def list_links(db: Database, space_id: int, *, created_by: str | None = None
               ) -> list[ShareInfo]:
    """The space's links, newest first (only ``created_by``'s when given)."""
    q = select(ShareLink).where(ShareLink.space_id == space_id)
    if created_by is not None:
        q = q.where(ShareLink.created_by == created_by)
    with db.session() as s:
        return [ShareInfo.of(x) for x in s.scalars(q.order_by(ShareLink.id.desc()))]


def revoke(db: Database, space_id: int, link_id: int, *, created_by: str | None = None
           ) -> str:
    """Revoke a link of this space (only one ``created_by`` made, when given).
    Returns the shared path; NotFound if there is no such active link."""
    q = (update(ShareLink).where(ShareLink.id == link_id)
         .where(ShareLink.space_id == space_id).where(ShareLink.revoked_at.is_(None)))
    if created_by is not None:
        q = q.where(ShareLink.created_by == created_by)
    with db.session() as s:
        if affected(s.execute(q.values(revoked_at=utcnow()))) != 1:
            raise NotFound("Ese enlace no existe o ya estaba revocado.")
        path = str(s.scalar(select(ShareLink.path).where(ShareLink.id == link_id)))
    log.info("share link revoked: space_id=%s link=%s", space_id, link_id)
    return path


@dataclass(frozen=True)
class Opened:
    link: ShareInfo
    space_name: str
    space_status: str
    password_hash: str | None


def open_link(db: Database, token: str) -> Opened:
    """The link behind ``token``: NotFound if none, Gone if expired, revoked,
    turned off or its space is suspended."""
    with db.session() as s:
        row = s.execute(
            select(ShareLink, Space.name, Space.status, Space.share_links_enabled)
            .join(Space, Space.id == ShareLink.space_id)
            .where(ShareLink.token_hash == _digest(token))).one_or_none()
        if row is None:
            raise NotFound("El enlace no existe.")
        link, name, status, on = row
        info = ShareInfo.of(link)
        pw = link.password_hash
    if info.revoked_at is not None:
        raise Gone("Este enlace fue revocado por quien lo compartió.")
    if info.expires_at <= utcnow():
        raise Gone(f"Este enlace venció el {info.expires_at:%d/%m/%Y a las %H:%M} (UTC).")
    if not on or status == "suspended":
        raise Gone("Este espacio ya no permite abrir enlaces compartidos.")
    return Opened(info, name, status, pw)


def check_password(opened: Opened, password: str) -> bool:
    return opened.password_hash is None or verify_password(password, opened.password_hash)


def count_download(db: Database, link_id: int) -> None:
    with db.session() as s:
        s.execute(update(ShareLink).where(ShareLink.id == link_id)
                  .values(downloads=ShareLink.downloads + 1))
