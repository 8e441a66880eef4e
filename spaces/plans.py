"""Tiers (the product catalogue) and the units they are sold in.

One "G" is 2**30 bytes (see :data:`spaces.settings.GIB`) everywhere: tiers,
quota messages, the status file and the portal.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from spaces.errors import NotFound
from spaces.settings import Settings, parse_size


@dataclass(frozen=True)
class Tier:
    name: str
    quota_bytes: int
    max_users: int | None  # None: unlimited
    cfdi_years: int
    monthly_price: Decimal
    free: bool


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
            )
    names = ", ".join(settings.tiers)
    raise NotFound(f"No existe el plan '{name}'. Planes disponibles: {names}.")


def list_tiers(settings: Settings) -> list[Tier]:
    return [get_tier(settings, name) for name in settings.tiers]


def format_bytes(n: int) -> str:
    """Human size in binary units with Spanish decimals: '1,5 GB' (1 GB = 2**30 bytes)."""
    value = float(n)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if abs(value) < 1024 or unit == "TB":
            if unit == "bytes":
                return f"{int(value)} bytes"
            text = f"{value:.2f}".rstrip("0").rstrip(".")
            return f"{text.replace('.', ',')} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover
