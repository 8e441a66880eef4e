"""A customer's fiscal data: what its facturas are made out to.

RFC (persona moral 12 characters, física 13, SAT check digit), razón social
exactly as in the Constancia de Situación Fiscal (upper case, without the
régimen capital: CFDI 4.0 compares it with SAT's register), régimen fiscal and
uso de CFDI from SAT's catalogues in the combinations SAT accepts for that kind
of persona (:mod:`spaces.sat.catalogs`), and the postal code of the domicilio
fiscal (SAT's c_CodigoPostal).

The RFC is the account's one RFC (``Account.rfc``, see :mod:`spaces.commerce.rfc_claims`):
changing it here drops an earlier verification and withdraws the constancia sent
for the old one, as a new RFC does there. An RFC another account has verified is
refused, and so are the generic RFCs (a customer who wants no factura simply does
not ask: the sale goes into the month's global factura) and the issuer's own.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass

from sqlalchemy import update

from spaces.cfdi.rfc import GENERIC_RFCS, normalize_rfc
from spaces.commerce import rfc_claims
from spaces.core.db import Database
from spaces.core.errors import AlreadyExists, InvalidName, NotFound
from spaces.core.models import Account
from spaces.core.settings import Settings
from spaces.sat import catalogs, postal_codes

log = logging.getLogger(__name__)

#: Characters a razón social may have: SAT's names are Spanish upper-case letters,
#: digits, spaces and a little punctuation. The CFDI forbids "|" (the cadena
#: original's separator); XML forbids control characters; the printed factura
#: uses Latin-1 fonts.
_NAME_PUNCTUATION = set(" &.,'-/()#+:;\"")
#: The régimen capital that CFDI 4.0 leaves out of the name ("S.A. de C.V.", ...).
_REGIMEN_CAPITAL = re.compile(
    r"[, ]+(S\.? ?A\.? ?P?\.? ?I?\.?( ?DE ?C\.? ?V\.?)?|S\.? ?DE ?R\.? ?L\.?( ?DE ?C\.? ?V\.?)?"
    r"|S\.? ?C\.?( ?DE ?R\.? ?L\.?)?|A\.? ?C\.?|S\.? ?A\.? ?S\.?)$")


@dataclass(frozen=True)
class FiscalData:
    rfc: str
    razon_social: str
    regimen_fiscal: str
    codigo_postal: str
    uso_cfdi: str

    @property
    def persona(self) -> str:
        return catalogs.persona(self.rfc)


def normalize_razon_social(text: str) -> str:
    """The name as SAT's register has it: NFC, upper case, single spaces.
    InvalidName for characters a CFDI cannot carry or a name with the régimen capital."""
    name = " ".join(unicodedata.normalize("NFC", text).replace("\u00a0", " ").split()).upper()
    if not name:
        raise InvalidName("Escriba su nombre o razón social como aparece en su Constancia de "
                          "Situación Fiscal.")
    if len(name) > 254:
        raise InvalidName("La razón social tiene más de 254 caracteres.")
    for ch in name:
        if ch in _NAME_PUNCTUATION or ch.isdigit() and ch.isascii():
            continue
        if ch.isalpha() and ord(ch) <= 0xFF:
            continue
        raise InvalidName(f"La razón social no puede llevar el carácter «{ch}». Escríbala "
                          "como aparece en su Constancia de Situación Fiscal.")
    if _REGIMEN_CAPITAL.search(name):
        raise InvalidName("Escriba la razón social sin el régimen capital (por ejemplo, sin "
                          "«S.A. de C.V.»): así la registra el SAT para la factura 4.0.")
    return name


def check(settings: Settings, rfc: str, razon_social: str, regimen: str, codigo_postal: str,
          uso: str) -> FiscalData:
    """The fiscal data, normalised; InvalidName (a Spanish sentence) for anything a
    PAC would refuse: a malformed RFC, a generic one or the issuer's, a name a CFDI
    cannot carry, a régimen or uso outside SAT's catalogue or not valid together
    for this kind of persona, a postal code not in SAT's catalogue."""
    r = normalize_rfc(rfc)
    if r is None:
        raise InvalidName("Escriba su RFC.")
    if r in GENERIC_RFCS:
        raise InvalidName("El RFC genérico no lleva factura a su nombre: si no necesita "
                          "factura, no la pida (su pago queda en la factura global del mes).")
    if r == settings.invoicing.issuer_rfc:
        raise InvalidName("Ese RFC es el de Resguardo, el emisor de la factura.")
    name = normalize_razon_social(razon_social)
    kind = catalogs.persona(r)
    who = "persona moral" if kind == "moral" else "persona física"
    reg = catalogs.REGIMENES.get(regimen.strip())
    if reg is None:
        raise InvalidName("Elija su régimen fiscal del catálogo del SAT.")
    if not (reg.moral if kind == "moral" else reg.fisica):
        raise InvalidName(f"El régimen {reg.code} ({reg.description}) no es para una {who} "
                          f"(su RFC tiene {len(r)} caracteres).")
    u = catalogs.USOS.get(uso.strip().upper())
    if u is None or u.code not in catalogs.USOS_FOR_SERVICE:
        raise InvalidName("Elija el uso de la factura: «Gastos en general» (G03) o «Sin "
                          "efectos fiscales» (S01).")
    if reg.code not in u.regimenes or not (u.moral if kind == "moral" else u.fisica):
        allowed = ", ".join(f"{x.code} ({x.description})" for x in catalogs.usos_for(r, reg.code))
        raise InvalidName(f"El SAT no acepta el uso {u.code} ({u.description}) con el régimen "
                          f"{reg.code}; para ese régimen elija: {allowed}.")
    cp = codigo_postal.strip()
    if not re.fullmatch(r"[0-9]{5}", cp) or cp not in postal_codes():
        raise InvalidName("Escriba el código postal de su domicilio fiscal (5 dígitos, como en "
                          "su constancia): ese no está en el catálogo del SAT.")
    return FiscalData(r, name, reg.code, cp, u.code)


def get(db: Database, account_id: int) -> FiscalData | None:
    """The account's fiscal data, or None while it is incomplete."""
    with db.session() as s:
        a = s.get(Account, account_id)
        if a is None:
            raise NotFound("La cuenta no existe.")
        if not (a.rfc and a.razon_social and a.regimen_fiscal and a.codigo_postal
                and a.uso_cfdi):
            return None
        return FiscalData(a.rfc, a.razon_social, a.regimen_fiscal, a.codigo_postal, a.uso_cfdi)


def draft(db: Database, account_id: int) -> dict[str, str]:
    """What the account has so far (for a form), complete or not."""
    with db.session() as s:
        a = s.get(Account, account_id)
        if a is None:
            raise NotFound("La cuenta no existe.")
        return {"rfc": a.rfc or "", "razon_social": a.razon_social or "",
                "regimen_fiscal": a.regimen_fiscal or "", "codigo_postal": a.codigo_postal or "",
                "uso_cfdi": a.uso_cfdi or "G03"}


def save(settings: Settings, db: Database, account_id: int, data: FiscalData) -> None:
    """Store ``data`` (already :func:`check`-ed) as the account's fiscal data.
    AlreadyExists when another account holds that RFC verified. A new RFC drops
    the verification of the old one and withdraws its constancia."""
    with db.session() as s:
        if rfc_claims.verified_elsewhere(s, data.rfc, account_id):
            raise AlreadyExists(f"El RFC {data.rfc} ya está verificado en otra cuenta. Si es "
                                "de su empresa, escríbanos.")
        a = s.get(Account, account_id)
        if a is None:
            raise NotFound("La cuenta no existe.")
        values: dict[str, object] = {
            "razon_social": data.razon_social, "regimen_fiscal": data.regimen_fiscal,
            "codigo_postal": data.codigo_postal, "uso_cfdi": data.uso_cfdi}
        old_document = None
        if a.rfc != data.rfc:
            old_document = a.rfc_document
            values.update(rfc=data.rfc, rfc_verified_at=None, rfc_verified_by=None,
                          rfc_document=None, rfc_document_at=None, rfc_review_note=None)
        s.execute(update(Account).where(Account.id == account_id).values(**values))
    if old_document:
        (rfc_claims.folder(settings, account_id) / old_document).unlink(missing_ok=True)
    log.info("fiscal data saved: account=%s rfc=%s regimen=%s uso=%s", account_id, data.rfc,
             data.regimen_fiscal, data.uso_cfdi)
