"""An RFC belongs to one account, and names a space only once proven.

Anyone can type any RFC, a third party's included: so a stated RFC
(``Account.rfc``) proves nothing. To name a space after an RFC — the space
whose address the firm's clients and staff will use — the account uploads the
company's *Constancia de Situación Fiscal* (the SAT's PDF, which carries the
RFC, the name and the tax address) and an operator, who compares it with the
stated RFC and the account, verifies it in ``/operador/rfc``. Until then the
RFC cannot name a space (:func:`check_may_name`), and neither can a username
shaped like an RFC (refused at sign-up), so nobody reaches a company's RFC
through the free space or a purchase first.

At most one account holds a verified RFC: a unique index on verified RFCs
refuses a second approval, however it arrives (two operators at once
included), and an account whose RFC someone else holds cannot even submit it.
Stating an RFC stays free (sign-up says nothing about who else stated it), so
a squatter cannot lock the real company out: the operator turns the squatter
down and approves the company. A new RFC or a new constancia drops an earlier
verification until an operator looks again.

The constancia is kept under ``data_dir/rfc/<account id>/`` (mode 0600), read
only by operators, served as an attachment in a sandbox.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from spaces.cfdi.rfc import looks_like_rfc, normalize_rfc
from spaces.core.db import Database, affected
from spaces.core.errors import AlreadyExists, Forbidden, InvalidName, NotFound
from spaces.core.models import Account, utcnow
from spaces.core.settings import Settings

log = logging.getLogger(__name__)

#: Largest constancia accepted (the SAT's are a few hundred KB).
MAX_DOCUMENT_BYTES = 900 * 1024

NOT_PROVEN = ("Para nombrar un espacio con su RFC, verifíquelo primero: suba su Constancia de "
              "Situación Fiscal en «Mi cuenta» y espere a que la revisemos.")


def folder(settings: Settings, account_id: int) -> Path:
    return settings.data_path / "rfc" / str(int(account_id))


def verified_elsewhere(s: Session, rfc: str, account_id: int) -> bool:
    """Whether another account than ``account_id`` holds ``rfc`` verified (so this
    one may neither submit it, nor save it as its fiscal data, nor invoice to it)."""
    return s.scalar(select(Account.id).where(Account.rfc == rfc)
                    .where(Account.rfc_verified_at.is_not(None))
                    .where(Account.id != account_id)) is not None


def submit(settings: Settings, db: Database, account_id: int, rfc: str, pdf: bytes) -> str:
    """Store ``pdf`` as the constancia of ``rfc`` for the account, to be reviewed.
    Returns the normalised RFC. InvalidName for a malformed RFC or a file that
    is not a PDF of at most :data:`MAX_DOCUMENT_BYTES`; AlreadyExists when
    another account holds that RFC. Any earlier verification is dropped."""
    r = normalize_rfc(rfc)
    if r is None:
        raise InvalidName("Escriba el RFC de la constancia.")
    if not pdf.startswith(b"%PDF-") or len(pdf) > MAX_DOCUMENT_BYTES:
        raise InvalidName("Suba la Constancia de Situación Fiscal en PDF (hasta 900 KB), "
                          "como la descarga del SAT.")
    with db.session() as s:
        held = verified_elsewhere(s, r, account_id)
        old = s.scalar(select(Account.rfc_document).where(Account.id == account_id))
    if held:
        raise AlreadyExists(f"El RFC {r} ya está verificado en otra cuenta. Si es de su "
                            "empresa, escríbanos.")
    d = folder(settings, account_id)
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = f"{secrets.token_hex(8)}.pdf"
    fd = os.open(d / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pdf)
        fh.flush()
        os.fsync(fh.fileno())
    with db.session() as s:
        s.execute(update(Account).where(Account.id == account_id).values(
            rfc=r, rfc_document=name, rfc_document_at=utcnow(), rfc_verified_at=None,
            rfc_verified_by=None, rfc_review_note=None))
    if old and old != name:
        (d / old).unlink(missing_ok=True)
    log.info("rfc constancia submitted: account=%s rfc=%s bytes=%d", account_id, r, len(pdf))
    return r


@dataclass(frozen=True)
class Claim:
    account_id: int
    username: str
    email: str
    rfc: str
    submitted_at: datetime | None


def pending(db: Database) -> list[Claim]:
    """Constancias waiting for an operator, oldest first."""
    with db.session() as s:
        rows = s.execute(select(Account.id, Account.username, Account.email, Account.rfc,
                                Account.rfc_document_at)
                         .where(Account.rfc_document.is_not(None))
                         .where(Account.rfc_verified_at.is_(None))
                         .where(Account.rfc_review_note.is_(None))
                         .order_by(Account.rfc_document_at, Account.id)).all()
    return [Claim(i, u, e, r or "", at) for i, u, e, r, at in rows]


def document(settings: Settings, db: Database, account_id: int) -> Path:
    """The account's constancia (NotFound if it has none)."""
    with db.session() as s:
        name = s.scalar(select(Account.rfc_document).where(Account.id == account_id))
    p = folder(settings, account_id) / name if name else None
    if p is None or not p.is_file():
        raise NotFound("Esa cuenta no tiene constancia.")
    return p


def approve(db: Database, account_id: int, by: str) -> str:
    """Verify the account's RFC (an operator compared it with the constancia).
    AlreadyExists if another account holds it; NotFound if there is nothing to
    verify. Returns the RFC."""
    try:
        with db.session() as s:
            done = affected(s.execute(update(Account).where(Account.id == account_id)
                                      .where(Account.rfc.is_not(None))
                                      .where(Account.rfc_document.is_not(None))
                                      .where(Account.rfc_verified_at.is_(None))
                                      .values(rfc_verified_at=utcnow(), rfc_verified_by=by,
                                              rfc_review_note=None)))
            rfc = s.scalar(select(Account.rfc).where(Account.id == account_id))
    except IntegrityError:
        raise AlreadyExists("Ese RFC ya está verificado en otra cuenta: sólo una puede "
                            "tenerlo.") from None
    if done != 1:
        raise NotFound("Esa cuenta no tiene una constancia por revisar.")
    log.info("rfc verified: account=%s rfc=%s by=%s", account_id, rfc, by)
    return str(rfc)


def reject(db: Database, account_id: int, by: str, reason: str) -> None:
    """Turn the constancia down, saying why (the customer reads it)."""
    reason = " ".join(reason.split())[:300] or "La constancia no corresponde al RFC indicado."
    with db.session() as s:
        done = affected(s.execute(update(Account).where(Account.id == account_id)
                                  .where(Account.rfc_document.is_not(None))
                                  .values(rfc_verified_at=None, rfc_verified_by=None,
                                          rfc_review_note=reason)))
    if done != 1:
        raise NotFound("Esa cuenta no tiene constancia.")
    log.info("rfc constancia rejected: account=%s by=%s", account_id, by)


def check_may_name(account_rfc: str | None, verified: bool, space_name: str) -> None:
    """Forbidden unless a space may be called ``space_name`` by this account: a
    name shaped like an RFC only if it is the account's own, verified RFC."""
    if not looks_like_rfc(space_name):
        return
    if verified and account_rfc and account_rfc.lower() == space_name.strip().lower():
        return
    raise Forbidden(NOT_PROVEN)
