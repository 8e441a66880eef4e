"""The one formatter (spaces.core.formats): what a Mexican customer reads, and English
with English formats."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from spaces.core import formats


@pytest.mark.parametrize("n, text", [
    (0, "0 bytes"), (1023, "1023 bytes"), (1536, "1.5 KB"), (600_147, "586.1 KB"),
    (4 * 2**30, "4 GB"), (1023 * 1024 + 1000, "1 MB"), (1_234_567_890_123, "1.1 TB"),
    (1500 * 2**40, "1,500 TB"),
])
def test_sizes_use_mexican_decimal_point_and_binary_units(n, text):
    assert formats.size(n) == text


def test_free_room_is_never_rounded_up_to_the_whole_quota():
    used = 602_808  # 588.68 KB
    assert formats.size(4 * 2**30 - used) == "4 GB"  # a size may round...
    assert formats.free_bytes(4 * 2**30 - used) == "3.9 GB"  # ...free room never up
    assert formats.free_bytes(-5) == "0 bytes"


def test_pesos_percentages_and_rates_in_es_mx_and_english():
    assert formats.mxn(Decimal("1656.485")) == "$1,656.49"  # half up
    assert formats.mxn(Decimal("-120")) == "-$120.00"
    assert formats.percent(0) == "0.0 %" and formats.percent(14.66, "en") == "14.7%"
    assert formats.rate(Decimal("16")) == "16 %" and formats.rate(Decimal("7.50")) == "7.5 %"
    assert formats.number(1234567) == "1,234,567"


def test_dates_one_style_and_times_in_mexico_city_with_their_zone():
    assert formats.day(date(2026, 12, 4)) == "4 dic 2026"
    assert formats.day(date(2026, 12, 4), "en") == "Dec 4, 2026"
    at = datetime(2026, 12, 4, 16, 5, tzinfo=UTC)
    assert formats.moment(at) == "4 dic 2026, 10:05 CST"
    assert formats.moment(at.replace(tzinfo=None)) == "4 dic 2026, 10:05 CST"  # naive = UTC
    assert formats.moment(at, "en") == "Dec 4, 2026, 10:05 AM CST"
    # Just after midnight UTC it is still the day before in Mexico City.
    assert formats.day(datetime(2027, 1, 1, 3, 0, tzinfo=UTC)) == "31 dic 2026"
    assert formats.moment(at, zone=ZoneInfo("America/Tijuana")) == "4 dic 2026, 08:05 PST"


def test_an_unknown_time_zone_is_a_config_error(tmp_path):
    from spaces.core.settings import ConfigError
    from spaces.core.settings_file import load_settings

    cfg = tmp_path / "r.toml"
    cfg.write_text('[portal]\ntimezone = "Mars/Olympus"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="timezone"):
        load_settings(cfg)
