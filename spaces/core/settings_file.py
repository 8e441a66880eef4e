"""The configuration file: one TOML file read into :class:`~spaces.core.settings.Settings`
(:func:`load_settings`), every value checked (an unknown key, a wrong type or a
value out of range is a :class:`~spaces.core.settings.ConfigError` naming the
file), and the example file that shows every key (:func:`example_toml`).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from decimal import Decimal, InvalidOperation
from typing import Any, get_type_hints

from spaces.core.settings import ConfigError, Settings, TierSettings, parse_size

ENV_CONFIG = "RESGUARDO_CONFIG"


def _convert(value: Any, typ: Any, where: str, source: str) -> Any:
    origin = getattr(typ, "__origin__", None)
    if dataclasses.is_dataclass(typ):
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: [{where}] debe ser una tabla")
        return _build(typ, value, where, source)
    if origin is dict:
        _key_t, val_t = typ.__args__
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: [{where}] debe ser una tabla")
        return {str(k): _convert(v, val_t, f"{where}.{k}", source) for k, v in value.items()}
    if typ is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: '{where}' debe ser true o false")
        return value
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: '{where}' debe ser un número entero")
        return value
    if typ is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: '{where}' debe ser texto entre comillas")
        return value
    raise ConfigError(f"{source}: tipo no soportado para '{where}'")  # pragma: no cover


def _build(cls: Any, data: dict[str, Any], where: str, source: str) -> Any:
    hints = get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            place = f"[{where}]" if where else "el nivel superior"
            raise ConfigError(f"{source}: clave desconocida '{key}' en {place}")
        kwargs[key] = _convert(value, hints[key], f"{where}.{key}" if where else key, source)
    return cls(**kwargs)


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Load settings from ``path``, else ``$RESGUARDO_CONFIG``, else the defaults.

    Raises ConfigError (message names the file) for a missing file, bad TOML,
    an unknown key or a value of the wrong type.
    """
    if path is None:
        path = os.environ.get(ENV_CONFIG) or None
    if path is None:
        return Settings()
    source = str(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{source}: el archivo de configuración no existe") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: TOML inválido: {exc}") from None
    settings: Settings = _build(Settings, data, "", source)
    # Tiers in the file override or add to the product's catalogue, by name.
    settings.tiers = {**Settings().tiers, **settings.tiers}
    settings.source = source
    _validate(settings, source)
    return settings


def _validate(settings: Settings, source: str) -> None:
    r = settings.retention
    if r.policy not in ("release", "purge"):
        raise ConfigError(f"{source}: retention.policy debe ser 'release' o 'purge'")
    if r.final_notice_days < 1 or r.first_notice_days < r.final_notice_days:
        raise ConfigError(f"{source}: retention necesita first_notice_days >= "
                          "final_notice_days >= 1")
    if settings.trash.days < 0 or settings.versions.keep < 0 or settings.versions.max_days < 0:
        raise ConfigError(f"{source}: trash.days, versions.keep y versions.max_days no pueden "
                          "ser negativos")
    if settings.locks.backend not in ("database", "redis"):
        raise ConfigError(f"{source}: locks.backend debe ser 'database' o 'redis'")
    if settings.storage.lease_seconds < 2:
        raise ConfigError(f"{source}: storage.lease_seconds debe ser al menos 2")
    if settings.locks.redis_persistence not in ("warn", "require"):
        raise ConfigError(f"{source}: locks.redis_persistence debe ser 'warn' o 'require'")
    try:
        (settings.storage.min_free_bytes, settings.storage.warn_free_bytes,  # noqa: B018
         settings.storage.ballast_bytes)
    except ValueError:
        raise ConfigError(f"{source}: storage.min_free, warn_free y ballast son tamaños como "
                          "\"256M\" o \"2G\"") from None
    if bool(settings.server.tls_cert) != bool(settings.server.tls_key):
        raise ConfigError(f"{source}: server.tls_cert y server.tls_key van juntos")
    try:
        settings.server.proxy_networks()
    except ValueError as exc:
        raise ConfigError(f"{source}: server.trusted_proxies: {exc}") from None
    try:
        settings.metrics.allowed_networks()
    except ValueError as exc:
        raise ConfigError(f"{source}: metrics.allow: {exc}") from None
    if settings.metrics.top_spaces < 0:
        raise ConfigError(f"{source}: metrics.top_spaces no puede ser negativo")
    if settings.mail.smtp_security not in ("starttls", "tls", "none"):
        raise ConfigError(f"{source}: mail.smtp_security debe ser 'starttls', 'tls' o 'none'")
    if settings.billing.gateway not in ("sandbox",):
        raise ConfigError(f"{source}: billing.gateway no reconocido: "
                          f"{settings.billing.gateway!r} (disponibles: 'sandbox')")
    try:
        settings.portal.zone()
    except ValueError:
        raise ConfigError(f"{source}: portal.timezone no es una zona horaria IANA: "
                          f"{settings.portal.timezone!r}") from None
    _validate_invoicing(settings, source)
    b = settings.billing
    for key in ("iva_rate", "discount_monthly", "discount_bimonthly", "discount_quarterly",
                "discount_semiannual", "discount_annual"):
        try:
            value = Decimal(getattr(b, key))
        except InvalidOperation:
            raise ConfigError(f"{source}: billing.{key} debe ser un número decimal entre "
                              "comillas") from None
        if value < 0 or (key.startswith("discount") and value >= 100):
            raise ConfigError(f"{source}: billing.{key} fuera de rango")
    try:
        days = [int(x) for x in b.reminder_days.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{source}: billing.reminder_days debe ser como \"7,1\"") from None
    if any(d <= 0 for d in days) or b.grace_days < 0:
        raise ConfigError(f"{source}: billing.reminder_days y grace_days deben ser positivos")
    if not settings.tiers:
        raise ConfigError(f"{source}: se necesita al menos un plan en [tiers]")
    for name, tier in settings.tiers.items():
        try:
            size = parse_size(tier.quota)
        except ValueError:
            raise ConfigError(f"{source}: tiers.{name}.quota no válido: {tier.quota!r} "
                              "(use por ejemplo \"4G\" o \"500M\")") from None
        try:
            price = Decimal(tier.monthly_price)
        except InvalidOperation:
            raise ConfigError(f"{source}: tiers.{name}.monthly_price debe ser un número "
                              "decimal entre comillas, por ejemplo \"65.00\"") from None
        if tier.reserve:
            try:
                parse_size(tier.reserve)
            except ValueError:
                raise ConfigError(f"{source}: tiers.{name}.reserve no válido: {tier.reserve!r} "
                                  "(use por ejemplo \"1G\" o \"300M\"; vacío: 25 % de la "
                                  "cuota, al menos 256M)") from None
        if size <= 0 or tier.max_users < 0 or tier.cfdi_years <= 0 or price < 0:
            raise ConfigError(f"{source}: valores inválidos en [tiers.{name}]")


#: The PACs this build knows (see spaces.commerce.pac.make_pac).
PACS = ("sandbox",)
#: SAT's test RFC (the default issuer): only the sandbox may issue with it.
SANDBOX_ISSUER_RFC = "EKU9003173C9"


def _validate_invoicing(settings: Settings, source: str) -> None:
    import re

    i = settings.invoicing
    if i.pac not in PACS:
        raise ConfigError(f"{source}: invoicing.pac no reconocido: {i.pac!r} "
                          f"(disponibles: {', '.join(repr(p) for p in PACS)})")
    if not re.fullmatch(r"[A-Z&Ñ]{3,4}[0-9]{6}[A-Z0-9]{3}", i.issuer_rfc):
        raise ConfigError(f"{source}: invoicing.issuer_rfc no es un RFC: {i.issuer_rfc!r}")
    if i.pac != "sandbox" and i.issuer_rfc == SANDBOX_ISSUER_RFC:
        raise ConfigError(f"{source}: invoicing.issuer_rfc es el RFC de pruebas del SAT: "
                          "escriba el RFC del operador para un PAC real")
    from spaces.sat.catalogs import REGIMENES

    regime = REGIMENES.get(i.issuer_regime)
    moral = len(i.issuer_rfc) == 12
    if regime is None or not (regime.moral if moral else regime.fisica):
        raise ConfigError(f"{source}: invoicing.issuer_regime {i.issuer_regime!r} no es un "
                          f"régimen del SAT para una persona {'moral' if moral else 'física'}")
    if not i.issuer_name.strip() or "|" in i.issuer_name or len(i.issuer_name) > 300:
        raise ConfigError(f"{source}: invoicing.issuer_name no válido")
    for key, pattern in (("issuer_regime", r"[0-9]{3}"), ("issuer_postal_code", r"[0-9]{5}"),
                         ("series", r"[^|]{1,25}"), ("product_code", r"[0-9]{8}"),
                         ("unit_code", r"[A-Z0-9]{1,3}")):
        if not re.fullmatch(pattern, getattr(i, key)):
            raise ConfigError(f"{source}: invoicing.{key} no válido: {getattr(i, key)!r}")


def iter_schema(cls: Any = Settings, prefix: str = "") -> list[tuple[str, Any, str]]:
    """(dotted key, default, help) for every key: used to check the example file."""
    out: list[tuple[str, Any, str]] = []
    instance = cls()
    for f in dataclasses.fields(cls):
        if f.metadata.get("internal") or f.name == "tiers":
            continue
        value = getattr(instance, f.name)
        if dataclasses.is_dataclass(value):
            out.extend(iter_schema(type(value), f"{prefix}{f.name}."))
        else:
            out.append((f"{prefix}{f.name}", value, f.metadata.get("help", "")))
    return out


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def example_toml() -> str:
    """The example configuration: every key, commented out, with its default and
    help line. ``config/resguardo.example.toml`` is exactly this text (a test
    checks it), printed by ``resguardo config example``."""
    lines = [
        "# Resguardo configuration. Every key is shown with its default value,",
        "# commented out: uncomment and change only what you need.",
        "# Load it with `resguardo --config FILE` or RESGUARDO_CONFIG=FILE.",
        "# Secrets never go here: RESGUARDO_SECRET_KEY (keyed hashes, portal sessions),",
        "# RESGUARDO_REDIS_PASSWORD, RESGUARDO_SMTP_PASSWORD, RESGUARDO_WEBHOOK_SECRET and",
        "# the CSD that seals the facturas (RESGUARDO_CSD_CERT, RESGUARDO_CSD_KEY,",
        "# RESGUARDO_CSD_PASSWORD) come from the environment (systemd EnvironmentFile=).",
        "",
    ]
    current = ""
    for key, default, help_text in iter_schema():
        section, _, name = key.rpartition(".")
        if section != current:
            lines += ["", f"[{section}]"]
            current = section
        lines.append(f"# {help_text}")
        lines.append(f"# {name} = {_toml_value(default)}")
    lines += ["", "# Tiers: the product catalogue. A [tiers.NAME] table here overrides or adds",
              "# a tier of the same name; these are the defaults."]
    for name, tier in Settings().tiers.items():
        lines += ["", f"# [tiers.{name}]"]
        for f in dataclasses.fields(TierSettings):
            lines.append(f"# {f.name} = {_toml_value(getattr(tier, f.name))}"
                         f"  # {f.metadata['help']}")
    return "\n".join(lines) + "\n"
