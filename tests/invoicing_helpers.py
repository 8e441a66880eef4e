"""Helpers for the facturación tests: a shop on a real database that sells and pays
through the domain (``Shop``, the ``shop`` fixture of conftest), a persona moral to invoice,
and SAT's own schemas to check what it issues (the files vendored in spaces/sat, loaded by
lxml directly: nothing of spaces.sat is used)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from lxml import etree
from portal_helpers import SmtpSink, write_config
from sqlalchemy import update

from spaces.commerce import (
    billing,
    invoice_records,
    invoicing,
    notices,
    pac,
)
from spaces.commerce.payments import SandboxGateway
from spaces.core import audit
from spaces.core.db import open_database
from spaces.core.mail import Mailer
from spaces.core.models import Account, Order, utcnow
from spaces.core.passwords import hash_password
from spaces.core.settings_file import load_settings

SAT = Path(__file__).resolve().parent.parent / "spaces" / "sat" / "cfd"
CFDI = "{http://www.sat.gob.mx/cfd/4}"


class Shop:
    def __init__(self, tmp_path: Path, smtp: SmtpSink, extra: str = "") -> None:
        cfg, self.pg = write_config(tmp_path, f'[mail]\nsmtp_host = "127.0.0.1"\n'
                                              f'smtp_port = {smtp.port}\n'
                                              f'smtp_security = "none"\n{extra}')
        self.config = cfg
        self.settings = load_settings(cfg)
        self.db = open_database(self.settings)
        self.mailer = Mailer(self.settings)
        self.smtp = smtp
        self.gateway = SandboxGateway(self.settings.webhook_secret)

    def account(self, username: str, rfc: str = "", razon: str = "", regimen: str = "",
                cp: str = "", uso: str = "G03") -> int:
        with self.db.session() as s:
            a = Account(username=username, email=f"{username}@example.mx",
                        password_hash=hash_password("una-clave-larga-1"), rfc=rfc or None,
                        razon_social=razon or None, regimen_fiscal=regimen or None,
                        codigo_postal=cp or None, uso_cfdi=uso, email_confirmed_at=utcnow())
            s.add(a)
            s.flush()
            return a.id

    def pay(self, account_id: int, tier: str = "4G", period: str = "monthly",
            invoice: bool = False, card: str = "4242424242424242") -> str:
        billing.add_to_cart(self.settings, self.db, account_id, tier, period, "username")
        order = billing.checkout(self.settings, self.db, account_id,
                                 self.settings.billing.contract_version, invoice=invoice)
        body, headers = self.gateway.charge(order.to_pay(), card)
        result = billing.process_event(self.settings, self.db, self.mailer,
                                       notices.Links("http://127.0.0.1"),
                                       self.gateway.parse_webhook(body, headers))
        assert result.status == "provisioned", result
        return order.reference

    def paid_at(self, reference: str, when: datetime) -> None:
        with self.db.session() as s:
            s.execute(update(Order).where(Order.reference == reference).values(paid_at=when))

    def issue(self, reference: str, **kw) -> invoice_records.InvoiceInfo:  # type: ignore[no-untyped-def]
        if "now" in kw and "pac" not in kw:
            kw["pac"] = self.pac_at(kw["now"])
        return invoicing.issue_for_order(self.settings, self.db, self.mailer, reference,
                                         actor=audit.SYSTEM, **kw)

    def pac_at(self, now: datetime) -> pac.SandboxPac:
        """The sandbox PAC with its clock at ``now`` (aware)."""
        return pac.SandboxPac(self.settings, clock=lambda: now)

    def issue_global(self, year: int, month: int,
                     now: datetime) -> invoice_records.InvoiceInfo | None:
        return invoicing.issue_global(self.settings, self.db, year, month, now=now,
                                      pac=self.pac_at(now))

    def xml(self, info: invoice_records.InvoiceInfo) -> bytes:
        return invoice_records.files(self.db, info.id)[0]


def moral(shop: Shop, username: str = "despacho") -> int:
    return shop.account(username, "DLO0101019A5", "DESPACHO LOPEZ", "601", "06600")


def schema_errors(xml: bytes) -> list[str]:
    """SAT's XSD (CFDI 4.0 + TFD 1.1 and the catalogues they import), loaded here by
    lxml from the vendored files: nothing of spaces.sat is used."""
    cfdi = (SAT / "4" / "cfdv40.xsd").as_uri()
    tfd = (SAT / "TimbreFiscalDigital" / "TimbreFiscalDigitalv11.xsd").as_uri()
    wrapper = etree.fromstring(
        f'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">'
        f'<xs:import namespace="http://www.sat.gob.mx/cfd/4" schemaLocation="{cfdi}"/>'
        f'<xs:import namespace="http://www.sat.gob.mx/TimbreFiscalDigital" '
        f'schemaLocation="{tfd}"/></xs:schema>'.encode(), base_url=(SAT / "x.xsd").as_uri())
    schema = etree.XMLSchema(wrapper)
    ok = schema.validate(etree.fromstring(xml))
    return [] if ok else [str(e) for e in schema.error_log]
