"""The one formatter of everything a customer reads: sizes, percentages, pesos,
dates and times, in Mexican Spanish (Babel's es_MX: decimal point, thousands
comma, "4 dic 2026") or in English with English formats.

The portal's templates, its browser script (``portal/static/drive.js`` uses
``Intl.NumberFormat`` with the same locale and the same rules), e-mails, the
status file and the command line all go through here, so one number never shows
two ways.

Rules:
- Sizes in binary units (1 KB = 1024 bytes, as Windows shows them), at most one
  decimal, rounded half up ("586.1 KB", "4 GB"); below 1 KB whole bytes.
  Free room is rounded *down* (``free_bytes``): 588.68 KB used of 4 GB leaves
  "3.9 GB", never "4 GB".
- Percentages with one decimal and a space before the sign in Spanish ("0.0 %").
- Pesos: "$1,656.48" (half up to centavos).
- Dates: "4 dic 2026" / "Dec 4, 2026"; times in the configured zone
  (``[portal] timezone``, America/Mexico_City by default) with its abbreviation:
  "4 dic 2026, 10:05 CST".
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from babel.dates import format_date as _babel_date
from babel.dates import format_time as _babel_time
from babel.numbers import format_decimal

#: The portal's language codes and the Babel locale whose formats they use.
LOCALES = {"es": "es_MX", "en": "en_US"}
#: The same, as browsers name them (``<html lang>``; ``Intl`` in drive.js).
HTML_LANG = {"es": "es-MX", "en": "en-US"}

DEFAULT_ZONE = ZoneInfo("America/Mexico_City")

_UNITS = ("KB", "MB", "GB", "TB")
_TENTH = Decimal("0.1")
_CENT = Decimal("0.01")


def _babel(lang: str) -> str:
    return LOCALES.get(lang, LOCALES["es"])


def number(value: Decimal | int | float, lang: str = "es", *, decimals: int = 0,
           fixed: bool = False) -> str:
    """``value`` with thousands separators and up to ``decimals`` decimals (exactly
    ``decimals`` when ``fixed``), rounded half up."""
    q = Decimal(str(value)).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    frac = ("0" if fixed else "#") * decimals
    return format_decimal(q, "#,##0" + (f".{frac}" if decimals else ""), locale=_babel(lang))


def size(n: int, lang: str = "es", *, down: bool = False) -> str:
    """'586.1 KB', '4 GB', '512 bytes' (binary units). ``down``: round toward zero
    (free room must never look larger than it is)."""
    n = int(n)
    if abs(n) < 1024:
        return f"{n} bytes"
    value = Decimal(n)
    unit = _UNITS[0]
    for unit in _UNITS:  # noqa: B007 - the last unit reached is the one used
        value /= 1024
        if abs(value) < 1024 or unit == _UNITS[-1]:
            break
    rounded = value.quantize(_TENTH, rounding=ROUND_FLOOR if down else ROUND_HALF_UP)
    if not down and abs(rounded) >= 1024 and unit != _UNITS[-1]:
        # 1023.96 KB is "1 MB", not "1,024 KB".
        rounded, unit = (rounded / 1024).quantize(_TENTH, rounding=ROUND_HALF_UP), \
            _UNITS[_UNITS.index(unit) + 1]
    return f"{format_decimal(rounded, '#,##0.#', locale=_babel(lang))} {unit}"


def free_bytes(n: int, lang: str = "es") -> str:
    """Free room, rounded down: what is shown always fits."""
    return size(max(int(n), 0), lang, down=True)


def percent(value: Decimal | float | int, lang: str = "es", *, decimals: int = 1,
            fixed: bool = True) -> str:
    """'0.0 %' (Spanish, a space before the sign) or '0.0%' (English)."""
    text = number(value, lang, decimals=decimals, fixed=fixed)
    return f"{text} %" if _babel(lang).startswith("es") else f"{text}%"


def rate(value: Decimal | float | int, lang: str = "es") -> str:
    """A rate such as IVA or a discount: '16 %', '7.5 %' (no trailing zeros)."""
    return percent(value, lang, decimals=2, fixed=False)


def mxn(value: Decimal | int | float, lang: str = "es") -> str:
    """'$1,656.48': pesos as Mexican receipts print them (half up to centavos); a
    negative amount (a credit) as '-$120.00'."""
    q = Decimal(str(value)).quantize(_CENT, rounding=ROUND_HALF_UP)
    text = format_decimal(abs(q), "#,##0.00", locale=_babel(lang))
    return f"-${text}" if q < 0 else f"${text}"


def day(d: date | datetime | None, lang: str = "es", zone: ZoneInfo | None = None) -> str:
    """'4 dic 2026' / 'Dec 4, 2026'. A datetime is first put in ``zone`` (naive
    datetimes are UTC, as the database stores them)."""
    if d is None:
        return ""
    if isinstance(d, datetime):
        d = local(d, zone).date()
    if _babel(lang).startswith("es"):
        return _babel_date(d, "d MMM y", locale=_babel(lang)).replace(".", "")
    return _babel_date(d, "MMM d, y", locale=_babel(lang))


def local(dt: datetime, zone: ZoneInfo | None = None) -> datetime:
    """``dt`` in ``zone`` (naive means UTC)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(zone or DEFAULT_ZONE)


def moment(dt: datetime | None, lang: str = "es", zone: ZoneInfo | None = None, *,
           seconds: bool = False) -> str:
    """'4 dic 2026, 10:05 CST': a date and time in ``zone`` with its abbreviation
    (24-hour clock in Spanish, 12-hour in English)."""
    if dt is None:
        return ""
    here = local(dt, zone)
    clock = ("HH:mm" if _babel(lang).startswith("es") else "h:mm") + (":ss" if seconds else "")
    clock += "" if _babel(lang).startswith("es") else " a"
    t = _babel_time(here, clock, locale=_babel(lang))
    return f"{day(here.date(), lang)}, {t} {zone_name(here)}"


def zone_name(dt: datetime) -> str:
    """The zone's abbreviation at ``dt`` ('CST'), or its UTC offset ('UTC-6')."""
    name = dt.tzname() or ""
    if name and name[0] not in "+-":
        return name
    off = dt.utcoffset()
    hours = int(off.total_seconds() // 3600) if off is not None else 0
    return f"UTC{hours:+d}" if hours else "UTC"
