"""Tiers (the product catalogue) and the units they are sold in.

One "G" is 2**30 bytes (see :data:`spaces.core.settings.GIB`) everywhere: tiers,
quota messages, the status file and the portal.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from spaces.core.errors import NotFound
from spaces.core.settings import Settings, parse_size


@dataclass(frozen=True)
class Tier:
    name: str
    quota_bytes: int
    max_users: int | None  # None: unlimited
    cfdi_years: int
    monthly_price: Decimal
    free: bool
    #: The safety reserve for the trash and earlier versions, outside the plan.
    reserve_bytes: int
    #: Files and folders it may hold, trash and versions included (0: no limit).
    max_entries: int = 0
    #: Deepest path, in levels.
    max_depth: int = 64


#: The smallest default reserve (the default is 25 % of the quota, at least this).
MIN_DEFAULT_RESERVE = 256 * 2**20


def reserve_for(quota_bytes: int, configured: str = "") -> int:
    """A tier's reserve: ``configured`` ("1G", "0") or, when empty, 25 % of its
    quota and at least 256 MiB."""
    if configured.strip():
        return parse_size(configured)
    return max(quota_bytes // 4, MIN_DEFAULT_RESERVE)


#: A tier without max_entries gets one entry per this many bytes of quota...
BYTES_PER_DEFAULT_ENTRY = 8 * 1024
#: ...and at least this many.
MIN_DEFAULT_ENTRIES = 10_000


def entries_for(quota_bytes: int, configured: int = 0) -> int:
    """A tier's max_entries: ``configured``, or one per 8 KiB of quota (at least
    10,000) when it is 0."""
    if configured > 0:
        return configured
    return max(quota_bytes // BYTES_PER_DEFAULT_ENTRY, MIN_DEFAULT_ENTRIES)


def get_tier(settings: Settings, name: str) -> Tier:
    """Return the tier called ``name`` (case-insensitive); NotFound otherwise."""
    for key, t in settings.tiers.items():
        if key.lower() == name.lower():
            return Tier(
                name=key,
                quota_bytes=parse_size(t.quota),
                max_users=t.max_users or None,
                cfdi_years=t.cfdi_years,
                monthly_price=Decimal(t.monthly_price),
                free=t.free,
                reserve_bytes=reserve_for(parse_size(t.quota), t.reserve),
                max_entries=entries_for(parse_size(t.quota), t.max_entries),
                max_depth=max(t.max_depth, 1),
            )
    names = ", ".join(settings.tiers)
    raise NotFound(f"No existe el plan '{name}'. Planes disponibles: {names}.")


def list_tiers(settings: Settings) -> list[Tier]:
    return [get_tier(settings, name) for name in settings.tiers]


# -- periods and prices (MXN, Decimal, IVA) -----------------------------------------

#: What can be bought: period key -> (months, Spanish words used in "por un mes").
PERIODS: dict[str, tuple[int, str]] = {
    "monthly": (1, "un mes"),
    "bimonthly": (2, "dos meses"),
    "quarterly": (3, "tres meses"),
    "semiannual": (6, "seis meses"),
    "annual": (12, "un año"),
}

CENT = Decimal("0.01")


def money(value: Decimal) -> Decimal:
    """Round to centavos, half-up (0.005 -> 0.01), the way a receipt rounds."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def to_cents(value: Decimal) -> int:
    return int(money(value) * 100)


def from_cents(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(CENT)


def format_mxn(value: Decimal) -> str:
    """'$1,234.50': pesos as Mexican receipts print them (see :mod:`spaces.core.formats`)."""
    from spaces.core import formats

    return formats.mxn(value)


@dataclass(frozen=True)
class Credit:
    """The unused days of a space's current plan, credited on a plan change: the
    plan's price for its period (after the period's discount, before IVA) times
    unused days / days of that period, half up to centavos."""

    tier: str
    period: str
    #: Days from the change (the new plan starts that day) to the paid-until date.
    days: int
    period_days: int
    until: date
    amount: Decimal


@dataclass(frozen=True)
class Quote:
    """The breakdown shown before buying, all in MXN rounded half-up to centavos:
    price = monthly price x months; discount = price x percent; credit = the
    unused days of the plan being replaced (a change of plan, :func:`proration_credit`);
    subtotal = price - discount - credit; tax = subtotal x IVA; total = subtotal + tax."""

    tier: str
    period: str
    months: int
    description: str
    price: Decimal
    discount_percent: Decimal
    discount: Decimal
    subtotal: Decimal
    tax: Decimal
    total: Decimal
    currency: str
    #: The part of ``credited`` applied to this price (at most price - discount).
    credit: Decimal = Decimal("0.00")
    credited: Credit | None = None
    #: A credit larger than the new plan's price: the rest becomes this many more
    #: days of the new plan (rounded down), after its period.
    extra_days: int = 0


def period_months(period: str) -> int:
    if period not in PERIODS:
        raise NotFound(f"Periodo no válido: '{period}'.")
    return PERIODS[period][0]


def period_discount(settings: Settings, period: str) -> Decimal:
    period_months(period)
    return Decimal(getattr(settings.billing, f"discount_{period}"))


def proration_credit(settings: Settings, tier_name: str, period: str, paid_until: date | None,
                     today: date) -> Credit | None:
    """What the unused days of ``tier_name`` bought for ``period`` and paid until
    ``paid_until`` are worth on ``today``; None when nothing is left (expired,
    due today, never paid, or a free plan).

    The value of a day is the plan's price for its period (after the period's
    discount, before IVA: the tax is computed on what remains) divided by that
    period's calendar days, the period being the one that ends on ``paid_until``.
    Several periods paid ahead are all credited, at the same daily value."""
    if paid_until is None or paid_until <= today:
        return None
    tier = get_tier(settings, tier_name)
    if tier.free:
        return None
    q = quote(settings, tier_name, period)
    period_days = (paid_until - add_months(paid_until, -q.months)).days
    days = (paid_until - today).days
    amount = money(q.subtotal * days / period_days)
    return Credit(tier.name, period, days, period_days, paid_until, amount)


def quote(settings: Settings, tier_name: str, period: str,
          credit: Credit | None = None) -> Quote:
    """Price of ``tier_name`` for ``period`` (less ``credit``: the unused days of
    the plan it replaces). NotFound for an unknown tier or period; the free tier
    is not for sale (it is claimed, see :mod:`spaces.commerce.accounts`).

    A credit larger than the new plan's price (a downgrade early in a long
    period) pays it whole, and what is left buys more days of the new plan at its
    own daily value, rounded down: nothing the customer paid is lost."""
    tier = get_tier(settings, tier_name)
    if tier.free:
        raise NotFound(f"El plan {tier.name} es gratuito: se activa, no se compra.")
    months, words = PERIODS[period] if period in PERIODS else (period_months(period), "")
    percent = period_discount(settings, period)
    price = money(tier.monthly_price * months)
    discount = money(price * percent / 100)
    reduction = credit.amount if credit is not None else Decimal("0.00")
    extra_days = 0
    if credit is not None and reduction > price - discount:
        value = price - discount
        start = credit.until - timedelta(days=credit.days)  # the day of the change
        days = (add_months(start, months) - start).days
        extra_days = int((reduction - value) * days / value) if value > 0 else 0
        reduction = value
    subtotal = price - discount - reduction
    tax = money(subtotal * Decimal(settings.billing.iva_rate))
    return Quote(
        tier=tier.name, period=period, months=months,
        description=f"Plan {tier.name} por {words}",
        price=price, discount_percent=percent, discount=discount, subtotal=subtotal,
        tax=tax, total=subtotal + tax, currency=settings.billing.currency,
        credit=reduction, credited=credit, extra_days=extra_days,
    )


def saleable_tiers(settings: Settings) -> list[Tier]:
    return [t for t in list_tiers(settings) if not t.free]


def free_tier(settings: Settings) -> Tier:
    for t in list_tiers(settings):
        if t.free:
            return t
    raise NotFound("No hay un plan gratuito configurado.")


def add_months(start: date, months: int) -> date:
    """``start`` plus ``months`` calendar months, the day clamped to the month's
    end (Jan 31 + 1 month = Feb 28/29)."""
    month0 = start.month - 1 + months
    year, month = start.year + month0 // 12, month0 % 12 + 1
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


def extend_paid_until(current: date | None, months: int, today: date) -> date:
    """A payment extends from the current paid-until date if it is still ahead,
    else from today (an expired space does not pay for the time it was unpaid)."""
    base = current if current is not None and current >= today else today
    return add_months(base, months)
