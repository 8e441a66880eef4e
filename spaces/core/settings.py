"""Typed configuration: :class:`Settings`, its sections and their keys.

Every key has a type, a default and a help line (the ``help`` metadata of its
field); ``config/resguardo.example.toml`` shows them all. Secrets never come
from the file: they are read from the environment (the properties of
:class:`Settings`). Reading the file, checking its values and writing the
example are :mod:`spaces.core.settings_file`; what it refuses is a
:class:`ConfigError` whose message names the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: One "G" of a tier is a gibibyte: 2**30 bytes, the unit Windows Explorer
#: uses when it shows "1 GB", so the customer sees what the plan promises.
GIB = 2**30

class ConfigError(Exception):
    """The configuration file is missing, malformed or has an unknown key."""


def _f(default: Any, help: str) -> Any:  # noqa: A002 - "help" is the schema's word
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: _copy(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


@dataclass
class ServerSettings:
    host: str = _f("127.0.0.1", "Address to listen on (0.0.0.0 for every interface).")
    port: int = _f(8080, "TCP port for the drive and the portal.")
    threads: int = _f(16, "Worker threads of the HTTP server.")
    tls_cert: str = _f("", "PEM certificate (chain) for HTTPS; empty serves plain HTTP.")
    tls_key: str = _f("", "PEM private key for tls_cert.")
    public_url: str = _f(
        "", "Base URL customers use (e.g. https://drive.example.mx); empty: derived."
    )
    block_size: int = _f(262144, "Bytes per read/write block when streaming files.")
    max_xml_body: int = _f(
        1048576, "Largest PROPFIND/PROPPATCH/LOCK body accepted, in bytes (413 above)."
    )
    trusted_proxies: str = _f(
        "",
        "Comma-separated addresses or networks (10.0.0.0/24) of reverse proxies or load "
        "balancers whose X-Forwarded-For/-Proto are believed; empty: none.",
    )
    max_drained_body: int = _f(
        1048576,
        "After an early refusal the server reads at most this many unread body bytes "
        "to keep the connection; a larger body closes it instead.",
    )
    head_timeout: int = _f(
        20,
        "Seconds a client has to complete the TLS handshake and send its whole request "
        "head (plus one second per min_rate bytes of a buffered body); slower: 408, closed. "
        "Also how long a worker's transfer may stay below min_rate.",
    )
    idle_timeout: int = _f(
        60, "Seconds a kept-alive connection may stay idle between requests."
    )
    max_request_line: int = _f(
        8192, "Longest request line (method, address, version) in bytes; longer: 414."
    )
    max_header_bytes: int = _f(
        32768, "Largest request head (request line and header fields) in bytes; larger: 431."
    )
    max_headers: int = _f(100, "Most header fields in one request; more: 431.")
    buffered_body: int = _f(
        65536,
        "Request bodies up to this many bytes are received whole before a worker thread "
        "takes the request (also the portal's largest form); larger ones stream to it.",
    )
    max_connections: int = _f(
        512,
        "Open client connections at most; a new one beyond it closes the one that has "
        "waited longest (idle ones first).",
    )
    min_rate: int = _f(
        1024,
        "Slowest transfer (bytes per second) a worker waits for, uploads and downloads "
        "alike, once head_timeout seconds of slack are used up; slower clients are cut.",
    )

    def proxy_networks(self) -> list[Any]:
        """``trusted_proxies`` parsed (ValueError if an entry is not an address)."""
        import ipaddress

        return [ipaddress.ip_network(part.strip(), strict=False)
                for part in self.trusted_proxies.split(",") if part.strip()]


@dataclass
class DatabaseSettings:
    url: str = _f(
        "",
        "SQLAlchemy URL (postgresql+psycopg://user@host/db); empty: SQLite in data_dir.",
    )
    busy_timeout_ms: int = _f(5000, "How long SQLite waits for a lock before giving up.")


@dataclass
class LockSettings:
    backend: str = _f("database", "Where WebDAV locks live: 'database' or 'redis'.")
    redis_url: str = _f(
        "redis://127.0.0.1:6379/0",
        "Redis URL for backend = 'redis' (password in RESGUARDO_REDIS_PASSWORD).",
    )
    key_prefix: str = _f(
        "resguardo:locks:",
        "Prefix of every Redis key: give each installation sharing a Redis its own.",
    )
    max_timeout: int = _f(
        3600,
        "Longest a lock lasts, in seconds: a client asking for more, for Infinite or for "
        "nothing gets this (it refreshes the lock while the document stays open).",
    )
    max_owner_bytes: int = _f(
        1024, "Largest <owner> a LOCK may carry, in bytes (it is sent back on every PROPFIND)."
    )
    redis_persistence: str = _f(
        "warn", "With backend = 'redis', checked at start-up: 'warn' logs loudly when Redis "
        "would lose every lock on a restart (no RDB 'save' and no appendonly) or does not let "
        "us ask (CONFIG refused); 'require' refuses to start then.")
    max_per_user: int = _f(100, "Live locks one user may hold in a space.")
    max_per_space: int = _f(1000, "Live locks a space may hold, all its users together.")


@dataclass
class PropertySettings:
    max_per_request: int = _f(
        100, "WebDAV dead properties one PROPPATCH may set or remove (more: 507, nothing "
        "stored).")
    max_per_resource: int = _f(100, "Dead properties one file or folder may hold.")
    max_bytes_per_resource: int = _f(
        65536, "Bytes of dead properties (names and values) one file or folder may hold. "
        "Every byte counts toward the space's quota.")


@dataclass
class AuthSettings:
    cache_seconds: int = _f(
        60, "How long a verified password is trusted before argon2 runs again."
    )
    max_failures: int = _f(
        5, "Bad passwords per drive user (or 4x per client address, API tokens included) "
        "before attempts are slowed, on every door at once (drive, web drive, portal)."
    )
    failure_window_seconds: int = _f(300, "Window in which bad passwords are counted.")
    block_seconds: int = _f(
        1, "First pause once max_failures is reached; each further bad password doubles it."
    )
    max_block_seconds: int = _f(
        60, "Longest pause imposed after repeated bad passwords (doubles up to this)."
    )


@dataclass
class LogSettings:
    json: bool = _f(
        False, "One JSON object per line (time, level, logger, message; requests add space, "
        "user, method, path, status, bytes and duration) instead of text lines.")
    access: bool = _f(True, "Log one line per HTTP request (logger resguardo.access).")


@dataclass
class MetricsSettings:
    enabled: bool = _f(True, "Serve Prometheus metrics at /metrics.")
    allow: str = _f(
        "127.0.0.1, ::1",
        "Comma-separated addresses or networks allowed to read /metrics (others get 403).",
    )
    top_spaces: int = _f(20, "How many of the fullest spaces get their own usage gauges.")

    def allowed_networks(self) -> list[Any]:
        """``allow`` parsed (ValueError if an entry is not an address)."""
        import ipaddress

        return [ipaddress.ip_network(part.strip(), strict=False)
                for part in self.allow.split(",") if part.strip()]


@dataclass
class DemoSettings:
    create: bool = _f(True, "On 'serve', create the demo space if no space exists yet.")
    space: str = _f("demo", "Name of the demo space.")
    user: str = _f("demo", "User of the demo space.")
    tier: str = _f("4G", "Tier of the demo space.")


@dataclass
class MailSettings:
    sender: str = _f("Resguardo <no-reply@localhost>", "From: address of every e-mail.")
    smtp_host: str = _f(
        "", "SMTP server; empty: each message is written as a .eml file to data_dir/outbox."
    )
    smtp_port: int = _f(587, "SMTP port (587 with STARTTLS, 465 with implicit TLS, 25 plain).")
    smtp_security: str = _f("starttls", "'starttls', 'tls' (implicit, port 465) or 'none'.")
    smtp_user: str = _f("", "SMTP user (its password in RESGUARDO_SMTP_PASSWORD); empty: no login.")
    timeout_seconds: int = _f(20, "How long to wait for the SMTP server.")


@dataclass
class BillingSettings:
    currency: str = _f("MXN", "Currency of every price.")
    iva_rate: str = _f("0.16", "IVA applied to the subtotal (Decimal text; 0.16 = 16 %).")
    discount_monthly: str = _f("0", "Discount in percent for paying 1 month (Decimal text).")
    discount_bimonthly: str = _f("0", "Discount in percent for paying 2 months.")
    discount_quarterly: str = _f("5", "Discount in percent for paying 3 months.")
    discount_semiannual: str = _f("10", "Discount in percent for paying 6 months.")
    discount_annual: str = _f("15", "Discount in percent for paying 12 months.")
    gateway: str = _f(
        "sandbox",
        "Payment gateway: 'sandbox' (offline test card form; webhook secret in "
        "RESGUARDO_WEBHOOK_SECRET, random per process when unset).",
    )
    contract_version: str = _f(
        "2026-01", "Version of the service contract customers accept at checkout."
    )
    reminder_days: str = _f(
        "7,1", "Days before paid-until on which the owner is reminded by e-mail (comma list)."
    )
    grace_days: int = _f(
        5, "Days after paid-until before an unpaid space becomes read-only."
    )


@dataclass
class InvoicingSettings:
    pac: str = _f(
        "sandbox",
        "PAC that stamps the facturas: 'sandbox' (stamps locally with a test certificate: "
        "NOT valid before SAT). The CSD (RESGUARDO_CSD_CERT, RESGUARDO_CSD_KEY, "
        "RESGUARDO_CSD_PASSWORD) comes from the environment; see docs/deploy.md.")
    issuer_rfc: str = _f(
        "EKU9003173C9", "RFC of the operator, the issuer of every factura (its CSD's RFC). "
        "The default is SAT's test RFC, for the sandbox only.")
    issuer_name: str = _f(
        "ESCUELA KEMPER URGATE", "Razón social of the issuer exactly as in its Constancia "
        "de Situación Fiscal (without 'S.A. de C.V.').")
    issuer_regime: str = _f("601", "Régimen fiscal of the issuer (SAT's c_RegimenFiscal).")
    issuer_postal_code: str = _f(
        "42501", "Lugar de expedición: postal code of the issuer's domicilio fiscal.")
    series: str = _f("RG", "Serie of the facturas (the folio is the factura's number).")
    product_code: str = _f(
        "81112006", "SAT's c_ClaveProdServ of the service (81112006: servicios de "
        "almacenamiento de datos).")
    unit_code: str = _f("E48", "SAT's c_ClaveUnidad of the service (E48: unidad de servicio).")


@dataclass
class PortalSettings:
    token_hours: int = _f(48, "How long e-mailed links (confirm, reset, set password) work.")
    max_login_failures: int = _f(
        5, "Bad portal passwords per account (by username or e-mail alike) or per share "
        "link before logins are slowed (addresses: [auth])."
    )
    login_window_seconds: int = _f(300, "Window in which bad portal passwords are counted.")
    login_block_seconds: int = _f(
        1, "First pause once max_login_failures is reached; each further one doubles it.")
    max_login_block_seconds: int = _f(60, "Longest pause after repeated bad portal passwords.")
    timezone: str = _f(
        "America/Mexico_City", "IANA time zone in which the portal, e-mails and status files "
        "show times (always with the zone's abbreviation).")
    contact_email: str = _f(
        "", "Where customers write to (shown on the landing page, errors and the footer); "
        "empty: no address is shown.")
    contact_phone: str = _f("", "Customer phone shown beside the contact address (optional).")
    operator_name: str = _f(
        "", "Who runs this service (company or person), shown on the landing page and in "
        "the footer; empty: not shown.")

    def zone(self) -> ZoneInfo:
        """The configured time zone; ValueError if it is not an IANA name."""
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ValueError(self.timezone) from None


@dataclass
class TierSettings:
    quota: str = _f(
        "1G", "Storage: a whole number with K, M or G (powers of 1024; 1G = 2**30 bytes).")
    max_users: int = _f(1, "Users allowed in the space; 0 means unlimited.")
    cfdi_years: int = _f(1, "Years each stamped CFDI is kept write-once.")
    monthly_price: str = _f("0.00", "Price per month in MXN before IVA (Decimal text).")
    free: bool = _f(False, "The free tier: claimable once per account.")
    reserve: str = _f(
        "", "Safety reserve for the space's trash and earlier versions, outside the plan "
        "(K, M or G; \"0\" keeps neither); empty: 25 % of the quota, at least 256M. When it "
        "is full, the oldest versions and then the oldest trash items are erased at once.")
    max_entries: int = _f(
        0, "Files and folders the space may hold, its trash and earlier versions included "
        "(empty ones too: each takes a row and an inode); 0: one per 8K of quota.")
    max_depth: int = _f(
        64, "Deepest path the space may hold, in levels (folders within folders, the file "
        "included); deeper: 400.")


DEFAULT_TIERS: dict[str, dict[str, Any]] = {
    "1G": {"quota": "1G", "max_users": 1, "cfdi_years": 1, "monthly_price": "0.00",
           "free": True, "max_entries": 150_000},
    "4G": {"quota": "4G", "max_users": 10, "cfdi_years": 5, "monthly_price": "65.00",
           "max_entries": 500_000},
    "10G": {"quota": "10G", "max_users": 30, "cfdi_years": 5, "monthly_price": "140.00",
            "max_entries": 1_000_000},
    "40G": {"quota": "40G", "max_users": 0, "cfdi_years": 5, "monthly_price": "450.00",
            "max_entries": 2_000_000},
    "80G": {"quota": "80G", "max_users": 0, "cfdi_years": 5, "monthly_price": "800.00",
            "max_entries": 4_000_000},
}

_UNITS = {"K": 2**10, "M": 2**20, "G": GIB, "T": 2**40}


def parse_size(text: str) -> int:
    """'4G' -> 4 * 2**30; '512K' -> 524288; a bare number is bytes. ValueError if malformed."""
    t = text.strip().upper()
    if t and t[-1] in _UNITS:
        number, unit = t[:-1].strip(), _UNITS[t[-1]]
    else:
        number, unit = t, 1
    if not number.isdigit():
        raise ValueError(f"tamaño no válido: {text!r}")
    return int(number) * unit


@dataclass
class RetentionSettings:
    policy: str = _f(
        "release",
        "When a CFDI's period ends: 'release' (it just becomes deletable) or 'purge' "
        "(deleted, after e-mailing the owner first_notice_days and final_notice_days ahead).")
    first_notice_days: int = _f(30, "Days before a purge that the first notice is e-mailed.")
    final_notice_days: int = _f(7, "Days before a purge that the last notice is e-mailed.")


@dataclass
class TrashSettings:
    days: int = _f(
        30, "Days a deleted file or folder stays in the space's trash (restorable) before "
        "the daily sweep erases it; 0 erases it at the next sweep. The trash lives in the "
        "tier's reserve, outside the plan.")


@dataclass
class VersionSettings:
    keep: int = _f(
        10, "Earlier versions kept per file when it is overwritten (PUT, COPY/MOVE onto it, "
        "Office's save-by-rename); 0 keeps none. Versions live in the tier's reserve, outside "
        "the plan.")
    max_days: int = _f(30, "Days an earlier version is kept before the daily sweep erases it.")


@dataclass
class StorageSettings:
    min_free: str = _f(
        "256M", "Free disk (K, M or G) the drive always leaves on data_dir's filesystem for "
        "the database, deletes, the trash and 'quota recount': a write that would leave less "
        "is refused with 507 before its bytes are stored.")
    warn_free: str = _f(
        "2G", "Below this much free disk (K, M or G) the server warns: a log line (at most "
        "once a minute), \"disk\": \"low\" in /healthz and the resguardo_disk_free_bytes gauge.")

    ballast: str = _f(
        "64M", "A file of this size (K, M or G; \"0\": none) the server keeps in "
        "data_dir/spaces and deletes, with an error in the log, when something else has filled "
        "the disk completely, so deletes, emptying the trash and the database still have room.")

    lease_seconds: int = _f(
        300, "How long an upload's reservation of quota stays counted without news from the "
        "process receiving it (renewed while the body streams). After that — the process "
        "died, or the database was away — any node gives it back; a node gives back its "
        "own dead processes' at once.")

    @property
    def ballast_bytes(self) -> int:
        return parse_size(self.ballast)

    @property
    def min_free_bytes(self) -> int:
        return parse_size(self.min_free)

    @property
    def warn_free_bytes(self) -> int:
        return parse_size(self.warn_free)


@dataclass
class Settings:
    data_dir: str = _f("data", "Folder for the files of every space and the SQLite database.")
    log_level: str = _f("INFO", "DEBUG, INFO, WARNING or ERROR.")
    server: ServerSettings = field(default_factory=ServerSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    locks: LockSettings = field(default_factory=LockSettings)
    properties: PropertySettings = field(default_factory=PropertySettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    demo: DemoSettings = field(default_factory=DemoSettings)
    log: LogSettings = field(default_factory=LogSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    mail: MailSettings = field(default_factory=MailSettings)
    billing: BillingSettings = field(default_factory=BillingSettings)
    invoicing: InvoicingSettings = field(default_factory=InvoicingSettings)
    portal: PortalSettings = field(default_factory=PortalSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    trash: TrashSettings = field(default_factory=TrashSettings)
    versions: VersionSettings = field(default_factory=VersionSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    tiers: dict[str, TierSettings] = field(
        default_factory=lambda: {k: TierSettings(**v) for k, v in DEFAULT_TIERS.items()}
    )
    #: Where these settings came from ("" for built-in defaults).
    source: str = field(default="", metadata={"internal": True})

    # -- derived values ---------------------------------------------------
    @property
    def data_path(self) -> Path:
        """``data_dir`` made absolute, symlinks resolved: once, since every
        request asks (again only if ``data_dir`` changes)."""
        known = self.__dict__.get("_data_path")
        if known is None or known[0] != self.data_dir:
            known = (self.data_dir, Path(self.data_dir).resolve())
            self.__dict__["_data_path"] = known
        return known[1]

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite:///{self.data_path / 'resguardo.db'}"

    @property
    def redis_password(self) -> str | None:
        return os.environ.get("RESGUARDO_REDIS_PASSWORD") or None

    @property
    def secret_key(self) -> bytes:
        """Secret for keyed hashes (RESGUARDO_SECRET_KEY); a random one per process
        when unset, which only costs a cold credential cache after a restart."""
        value = os.environ.get("RESGUARDO_SECRET_KEY")
        if value:
            return value.encode()
        return _PROCESS_SECRET

    @property
    def smtp_password(self) -> str | None:
        return os.environ.get("RESGUARDO_SMTP_PASSWORD") or None

    @property
    def webhook_secret(self) -> bytes:
        """Secret the payment gateway signs its webhooks with
        (RESGUARDO_WEBHOOK_SECRET). Unset, a random one per process: enough for the
        offline sandbox gateway, whose webhooks this same process signs."""
        value = os.environ.get("RESGUARDO_WEBHOOK_SECRET")
        if value:
            return value.encode()
        return _PROCESS_WEBHOOK_SECRET

    @property
    def csd_files(self) -> tuple[str, str, str] | None:
        """The operator's CSD: paths of its certificate (.cer) and key (.key) and the
        key's password, from RESGUARDO_CSD_CERT, RESGUARDO_CSD_KEY and
        RESGUARDO_CSD_PASSWORD; None when the certificate is not set. Never from the
        configuration file."""
        cert = os.environ.get("RESGUARDO_CSD_CERT", "")
        if not cert:
            return None
        return (cert, os.environ.get("RESGUARDO_CSD_KEY", ""),
                os.environ.get("RESGUARDO_CSD_PASSWORD", ""))

    def base_url(self) -> str:
        if self.server.public_url:
            return self.server.public_url.rstrip("/")
        scheme = "https" if self.server.tls_cert else "http"
        host = self.server.host
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 - only used to print a URL
            host = "127.0.0.1"
        return f"{scheme}://{host}:{self.server.port}"


_PROCESS_SECRET = os.urandom(32)
_PROCESS_WEBHOOK_SECRET = os.urandom(32)
