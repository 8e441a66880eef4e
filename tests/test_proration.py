"""Proration: a plan change mid-period credits the unused days of the current
plan as a line of its own, half up to centavos, for every pair of plans and
periods (the pricing function, spaces.core.plans), and through the portal."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest

from spaces.core import plans
from spaces.core.settings import Settings

SETTINGS = Settings()
TIERS = [t.name for t in plans.saleable_tiers(SETTINGS)]
PERIODS = list(plans.PERIODS)
MONTHS = {"monthly": 1, "bimonthly": 2, "quarterly": 3, "semiannual": 6, "annual": 12}
PERCENT = {"monthly": 0, "bimonthly": 0, "quarterly": 5, "semiannual": 10, "annual": 15}
MONTHLY = {"4G": "65.00", "10G": "140.00", "40G": "450.00", "80G": "800.00"}
CENT = Decimal("0.01")
PLANS = [(t, p) for t in TIERS for p in PERIODS]
#: Every change of plan: the same plan again is a renewal (its period is added,
#: nothing is credited: tests/test_portal_shop.py).
CHANGES = [old + new for old in PLANS for new in PLANS if old[0] != new[0]]


def half_up(x: Decimal) -> Decimal:
    return x.quantize(CENT, rounding=ROUND_HALF_UP)


def value_of(tier: str, period: str) -> Decimal:
    """What a plan costs for a period before IVA, computed here from the price list."""
    price = half_up(Decimal(MONTHLY[tier]) * MONTHS[period])
    return price - half_up(price * PERCENT[period] / 100)


def months_before(d: date, months: int) -> date:
    y, m = divmod(d.year * 12 + d.month - 1 - months, 12)
    return date(y, m + 1, d.day)  # days used below (15) exist in every month


def test_the_price_list_is_the_one_this_test_assumes():
    assert TIERS == list(MONTHLY) and PERIODS == list(MONTHS)


def test_a_worked_example_4g_monthly_to_10g_monthly_half_way():
    # Paid 4G for Dec 15 - Jan 15 (31 days, $65.00); on Dec 31 (15 days left) the
    # change to 10G credits 65 x 15 / 31 = 31.4516... = $31.45.
    credit = plans.proration_credit(SETTINGS, "4G", "monthly", date(2027, 1, 15),
                                    date(2026, 12, 31))
    assert (credit.days, credit.period_days, credit.amount) == (15, 31, Decimal("31.45"))
    q = plans.quote(SETTINGS, "10G", "monthly", credit)
    assert (q.price, q.discount, q.credit, q.subtotal) == (
        Decimal("140.00"), Decimal("0.00"), Decimal("31.45"), Decimal("108.55"))
    assert (q.tax, q.total) == (Decimal("17.37"), Decimal("125.92"))  # 17.368 -> 17.37


@pytest.mark.parametrize("today", [date(2027, 3, 1), date(2026, 10, 7)],
                         ids=["14-days-left", "159-days-left"])
@pytest.mark.parametrize("old_tier, old_period, new_tier, new_period", CHANGES)
def test_every_change_of_plan_and_period_credits_the_unused_days_half_up(
        old_tier, old_period, new_tier, new_period, today):
    until = date(2027, 3, 15)
    period_days = (until - months_before(until, MONTHS[old_period])).days
    days = (until - today).days
    expected = half_up(value_of(old_tier, old_period) * days / period_days)

    credit = plans.proration_credit(SETTINGS, old_tier, old_period, until, today)
    assert (credit.tier, credit.days, credit.period_days) == (old_tier, days, period_days)
    assert credit.amount == expected
    new_value = value_of(new_tier, new_period)
    q = plans.quote(SETTINGS, new_tier, new_period, credit)
    assert q.credited == credit
    if expected > new_value:
        # A credit larger than the new price pays it whole; the rest buys days of
        # the new plan at its own daily value, rounded down.
        new_days = (plans.add_months(today, MONTHS[new_period]) - today).days
        assert q.credit == new_value and q.subtotal == 0 and q.tax == 0 and q.total == 0
        assert q.extra_days == int((expected - new_value) * new_days / new_value)
        assert q.extra_days * new_value / new_days <= expected - new_value
        return
    assert q.credit == expected and q.extra_days == 0
    assert q.subtotal == new_value - expected == q.price - q.discount - q.credit
    assert q.tax == half_up(q.subtotal * Decimal("0.16"))
    assert q.total == q.subtotal + q.tax
    # Without the change the new plan costs its full price: the credit is the difference.
    full = plans.quote(SETTINGS, new_tier, new_period)
    assert full.subtotal - q.subtotal == expected


@pytest.mark.parametrize("until, today", [(None, date(2027, 1, 1)),
                                          (date(2027, 1, 1), date(2027, 1, 1)),
                                          (date(2026, 12, 1), date(2027, 1, 1))],
                         ids=["never-paid", "due-today", "expired"])
def test_nothing_is_credited_when_no_paid_day_is_left(until, today):
    assert plans.proration_credit(SETTINGS, "4G", "annual", until, today) is None


def test_the_free_plan_is_worth_nothing_to_credit():
    assert plans.proration_credit(SETTINGS, "1G", "monthly", date(2030, 1, 1),
                                  date(2027, 1, 1)) is None


def test_a_downgrade_early_in_a_year_turns_the_rest_of_the_credit_into_days():
    # 80G for a year, changed the same day to 4G monthly: $8,160.00 of credit pays
    # the $65.00 month and the other $8,095.00 buys 8095 x 31 / 65 = 3,860.7 days.
    today = date(2027, 1, 15)
    credit = plans.proration_credit(SETTINGS, "80G", "annual", date(2028, 1, 15), today)
    assert credit.amount == Decimal("8160.00")
    q = plans.quote(SETTINGS, "4G", "monthly", credit)
    assert (q.credit, q.total, q.extra_days) == (Decimal("65.00"), Decimal("0.00"), 3860)


def test_a_whole_unused_period_is_credited_whole():
    until = date(2027, 6, 15)
    for period in PERIODS:
        today = months_before(until, MONTHS[period])
        credit = plans.proration_credit(SETTINGS, "40G", period, until, today)
        assert credit.amount == value_of("40G", period)
        assert plans.proration_credit(SETTINGS, "40G", period, until,
                                      until - timedelta(days=1)).days == 1
