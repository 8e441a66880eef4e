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

A link is bound to the object it was made for, not to a path: its ``path``
follows the object's renames and moves (:func:`moved`, called by
``SpaceFiles.move`` like the versions' and the CFDI index's), and it keeps the
object's inode, which a rename keeps and a replacement changes. When the
object is deleted the link is over (:func:`deleted`, from ``SpaceFiles.delete``),
even if the object comes back from the trash; and a link whose path holds
another object (a new upload over the file, a folder swapped in by any means)
serves nothing (:func:`check_object`): Gone, 410.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select, update

from spaces.core import formats
from spaces.core.db import Database, affected, path_move_params, path_mover
from spaces.core.errors import Forbidden, InvalidName, NotFound, SpaceError
from spaces.core.models import ShareLink, Space, utcnow
from spaces.core.passwords import MIN_PASSWORD_LENGTH, hash_password, verify_password

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
    inode: int | None = None
    gone_at: datetime | None = None

    @property
    def active(self) -> bool:
        return (self.revoked_at is None and self.gone_at is None
                and self.expires_at > utcnow())

    @classmethod
    def of(cls, s: ShareLink) -> ShareInfo:
        return cls(s.id, s.space_id, s.path, s.is_dir, s.password_hash is not None,
                   s.created_by, s.created_at, s.expires_at, s.revoked_at, s.downloads,
                   s.inode, s.gone_at)


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
           inode: int, days: int = DEFAULT_DAYS, password: str = "") -> tuple[str, ShareInfo]:
    """A new link to the object at ``path`` ('/a/b', already resolved by the
    caller; ``inode`` is that object's) for ``days`` days. Returns (token,
    info): the token is shown once and never stored. Forbidden when the space
    has links turned off."""
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
                         is_dir=is_dir, inode=inode,
                         password_hash=hash_password(password) if password else None,
                         created_by=created_by,
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
    if info.gone_at is not None:
        raise Gone(GONE_OBJECT)
    if info.expires_at <= utcnow():
        raise Gone(f"Este enlace venció el {formats.moment(info.expires_at)}.")
    if not on or status == "suspended":
        raise Gone("Este espacio ya no permite abrir enlaces compartidos.")
    return Opened(info, name, status, pw)


GONE_OBJECT = "Lo compartido ya no existe: se borró o se reemplazó."


def check_object(db: Database, link: ShareInfo, inode: int | None) -> None:
    """Gone unless ``inode`` (what is at the link's path now, None for nothing)
    is the object the link was made for. A link made before identities were
    kept is bound to what it finds the first time."""
    if inode is None:
        raise Gone(GONE_OBJECT)
    if link.inode is None:
        with db.session() as s:
            s.execute(update(ShareLink).where(ShareLink.id == link.id)
                      .where(ShareLink.inode.is_(None)).values(inode=inode))
        return
    if link.inode != inode:
        log.info("share link refused: link=%s path=%s holds another object", link.id,
                 link.path)
        raise Gone(GONE_OBJECT)


#: Every MOVE runs it: built once.
_MOVE_LINKS = path_mover(ShareLink, ShareLink.space_id == bindparam("sid"))


def moved(db: Database, space_id: int, src: str, dst: str) -> None:
    """The object at ``src`` (and everything below it) is now at ``dst``: the links
    made for them follow (exact path comparisons, as everywhere)."""
    with db.engine.begin() as c:
        c.execute(_MOVE_LINKS, {"sid": space_id, **path_move_params(src, dst)})


def deleted(db: Database, space_id: int, path: str, keep: frozenset[str] = frozenset()
            ) -> None:
    """The object at ``path`` and what is below it were deleted, except the paths
    in ``keep`` (protected CFDI that stay, and the folders that lead to them):
    their links are over for good."""
    below = path.rstrip("/") + "/"
    with db.session() as s:
        rows = s.execute(select(ShareLink.id, ShareLink.path)
                         .where(ShareLink.space_id == space_id)
                         .where(ShareLink.gone_at.is_(None))).all()
        ids = [i for i, p in rows
               if (p == path or p.startswith(below)) and p not in keep]
        if ids:
            s.execute(update(ShareLink).where(ShareLink.id.in_(ids))
                      .values(gone_at=utcnow()))
    if ids:
        log.info("share links over with their object: space_id=%s path=%s links=%s",
                 space_id, path, ids)


def check_password(opened: Opened, password: str) -> bool:
    return opened.password_hash is None or verify_password(password, opened.password_hash)


def count_download(db: Database, link_id: int) -> None:
    with db.session() as s:
        s.execute(update(ShareLink).where(ShareLink.id == link_id)
                  .values(downloads=ShareLink.downloads + 1))
