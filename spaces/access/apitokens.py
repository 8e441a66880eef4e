"""Bearer tokens of the operator REST API: created in the operator portal
(``/operador/tokens``) or from the command line (``resguardo admin token create
NAME``), shown once, stored as SHA-256. A revoked token keeps its row (and its
name) so the list shows when it was revoked and last used."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from spaces.core.db import Database
from spaces.core.errors import AlreadyExists, InvalidName, NotFound
from spaces.core.models import ApiToken, utcnow

PREFIX = "rgapi_"


@dataclass(frozen=True)
class TokenInfo:
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def create(db: Database, name: str) -> str:
    """A new token named ``name``; returns it (the only time it is visible)."""
    name = name.strip()
    if not name or len(name) > 64 or not name.isprintable():
        raise InvalidName("El nombre del token debe tener de 1 a 64 caracteres, sin "
                          "caracteres de control.")
    token = PREFIX + secrets.token_urlsafe(32)
    try:
        with db.session() as s:
            s.add(ApiToken(name=name, token_hash=_hash(token)))
    except IntegrityError:
        raise AlreadyExists(f"Ya existe un token llamado '{name}'.") from None
    return token


def revoke(db: Database, name: str) -> None:
    with db.engine.begin() as c:
        n = c.execute(update(ApiToken).where(ApiToken.name == name.strip(),
                                             ApiToken.revoked_at.is_(None))
                      .values(revoked_at=utcnow())).rowcount
    if not n:
        raise NotFound(f"No hay un token vigente llamado '{name}'.")


def list_tokens(db: Database) -> list[TokenInfo]:
    with db.session() as s:
        return [TokenInfo(t.name, t.created_at, t.last_used_at, t.revoked_at)
                for t in s.scalars(select(ApiToken).order_by(ApiToken.name))]


def verify(db: Database, token: str) -> str | None:
    """The name of the live token ``token``, or None. Raises SQLAlchemyError if
    the database is unavailable (the API then answers 503: fail closed)."""
    if not token.startswith(PREFIX):
        return None
    digest = _hash(token)
    with db.engine.begin() as c:
        row = c.execute(select(ApiToken.id, ApiToken.name, ApiToken.token_hash)
                        .where(ApiToken.token_hash == digest,
                               ApiToken.revoked_at.is_(None))).first()
        if row is None or not hmac.compare_digest(row.token_hash, digest):
            return None
        c.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=utcnow()))
    return str(row.name)
