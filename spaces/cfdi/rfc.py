"""The RFC (Registro Federal de Contribuyentes): format and SAT check digit."""

from __future__ import annotations

import re

from spaces.core.errors import InvalidName

#: Generic RFCs the SAT allows by name (their check digit does not verify).
GENERIC_RFCS = frozenset({"XAXX010101000", "XEXX010101000"})

_RFC_RE = re.compile(
    r"^[A-Z&Ñ]{3,4}[0-9]{2}(0[1-9]|1[012])(0[1-9]|[12][0-9]|3[01])[A-Z0-9]{2}[0-9A]$"
)
_CHARSET = "0123456789ABCDEFGHIJKLMN&OPQRSTUVWXYZ Ñ"


#: The shape of an RFC, without judging the date or the check digit: what must
#: not name a space unless its owner proved it holds that RFC.
_RFC_SHAPE = re.compile(r"^[A-Z&Ñ]{3,4}[0-9]{6}[A-Z0-9]{3}$")


def looks_like_rfc(name: str) -> bool:
    """Whether ``name`` (any case) has the shape of an RFC (12 or 13 characters:
    letters, a six-digit date, three more), valid check digit or not."""
    return bool(_RFC_SHAPE.match(name.strip().upper()))


def check_digit(first: str) -> str:
    """The modulo-11 check digit for the first 11 (persona moral) or 12 (persona
    física) characters of an RFC."""
    padded = first if len(first) == 12 else " " + first
    total = sum(_CHARSET.index(ch) * (13 - i) for i, ch in enumerate(padded))
    remainder = total % 11
    if remainder == 0:
        return "0"
    digit = 11 - remainder
    return "A" if digit == 10 else str(digit)


def is_valid_rfc(rfc: str) -> bool:
    """True for a well-formed RFC of 12 (moral) or 13 (física) characters whose
    check digit verifies, or one of the generic RFCs."""
    if rfc in GENERIC_RFCS:
        return True
    if not _RFC_RE.match(rfc or ""):
        return False
    return check_digit(rfc[:-1]) == rfc[-1]


def rfc_problem(rfc: str) -> str | None:
    """What is wrong with ``rfc`` in words a customer reads (None if nothing):
    "formato no válido" or "dígito verificador que no coincide". Real RFCs
    issued by the SAT sometimes fail the check digit, so callers that decide
    anything important report it rather than refuse."""
    if rfc in GENERIC_RFCS:
        return None
    if not _RFC_RE.match(rfc or ""):
        return "formato no válido"
    if check_digit(rfc[:-1]) != rfc[-1]:
        return "dígito verificador que no coincide"
    return None


def normalize_rfc(rfc: str) -> str | None:
    """Upper-case RFC, or None when empty. InvalidName unless it has 12 (persona
    moral) or 13 (persona física) characters, the SAT pattern and a valid check
    digit (the generic XAXX010101000 and XEXX010101000 are accepted)."""
    r = rfc.strip().upper().replace(" ", "").replace("-", "")
    if not r:
        return None
    if len(r) not in (12, 13):
        raise InvalidName("El RFC debe tener 12 caracteres (persona moral) o 13 (persona "
                          "física).")
    if not is_valid_rfc(r):
        raise InvalidName(f"El RFC {r} no es válido: revise las letras, la fecha y el dígito "
                          "verificador.")
    return r


# -- one-time tokens -----------------------------------------------------------------
