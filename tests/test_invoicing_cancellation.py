"""Facturación: cancellation. An operator cancels with SAT's motivos, each cancellation
audited; a cancelled global factura releases its sales; a cancellation the receptor must
accept ends when it answers; a refund cancels with motivo 03; the command line issues the
global factura, lists and cancels."""

from __future__ import annotations

from datetime import datetime

import pytest
from invoicing_helpers import CFDI, moral, schema_errors
from lxml import etree
from sqlalchemy import select

from spaces.commerce import (
    billing,
    invoice_cancel,
    invoice_records,
    invoicing,
    pac,
)
from spaces.core import audit
from spaces.core.errors import Forbidden, InvalidName, SpaceError
from spaces.core.models import AuditRecord, Invoice

OPERATOR = audit.Actor("operator:root", "127.0.0.1", "portal")


# -- cancellation -------------------------------------------------------------------------

@pytest.mark.db
def test_an_operator_cancels_with_sats_motivos_and_each_cancellation_is_audited(shop):
    a = moral(shop)
    first = shop.issue(shop.pay(a))
    with pytest.raises(InvalidName, match="04"):
        invoice_cancel.cancel(shop.settings, shop.db, first.id, "04", actor=OPERATOR)
    with pytest.raises(InvalidName, match="Sustituir"):
        invoice_cancel.cancel(shop.settings, shop.db, first.id, "01", actor=OPERATOR)
    with pytest.raises(InvalidName):
        invoice_cancel.cancel(shop.settings, shop.db, first.id, "05", actor=OPERATOR)
    done = invoice_cancel.cancel(shop.settings, shop.db, first.id, "02", actor=OPERATOR)
    assert done.status == "cancelled" and done.cancel_reason == "02"
    with shop.db.session() as s:
        ack = s.get(Invoice, first.id).cancel_ack
    assert first.uuid in ack and 'Motivo="02"' in ack
    with pytest.raises(Forbidden):
        invoice_cancel.cancel(shop.settings, shop.db, first.id, "03", actor=OPERATOR)
    # The operator issues it again; then replaces it (01): new one related, old cancelled.
    again = shop.issue(first.order_reference, operator=True)
    assert again.uuid != first.uuid
    new = invoicing.substitute(shop.settings, shop.db, shop.mailer, again.id, actor=OPERATOR)
    root = etree.fromstring(shop.xml(new))
    rel = root.find(f"{CFDI}CfdiRelacionados")
    assert rel.get("TipoRelacion") == "04"
    assert rel.find(f"{CFDI}CfdiRelacionado").get("UUID") == again.uuid
    assert schema_errors(shop.xml(new)) == []
    old = invoice_records.get_invoice(shop.db, again.id)
    assert old.status == "cancelled" and old.cancel_reason == "01"
    assert old.cancel_replacement == new.uuid
    with shop.db.session() as s:
        rows = s.execute(select(AuditRecord.action, AuditRecord.user, AuditRecord.detail)
                         .where(AuditRecord.action.in_(("invoice_issued",
                                                        "invoice_cancelled")))
                         .order_by(AuditRecord.id)).all()
    assert [r.action for r in rows] == ["invoice_issued", "invoice_cancelled",
                                        "invoice_issued", "invoice_issued",
                                        "invoice_cancelled"]
    cancels = [r for r in rows if r.action == "invoice_cancelled"]
    assert all(r.user == "operator:root" for r in cancels)
    assert "motivo 02" in cancels[0].detail and f"sustituida por {new.uuid}" in cancels[1].detail


@pytest.mark.db
def test_a_cancelled_global_factura_releases_its_sales_for_the_next_one(shop):
    ref = shop.pay(shop.account("anon"))
    shop.paid_at(ref, datetime(2026, 3, 10, 12, 0))
    after = datetime(2026, 4, 1, 12, 0).replace(tzinfo=pac.UTC)
    g = shop.issue_global(2026, 3, after)
    assert g is not None
    invoice_cancel.cancel(shop.settings, shop.db, g.id, "04", actor=OPERATOR)
    assert billing.get_order(shop.db, ref).invoice_state == "none"
    g2 = shop.issue_global(2026, 3, after)
    assert g2 is not None and g2.id != g.id and g2.status == "valid"


@pytest.mark.db
def test_the_command_line_issues_the_global_factura_lists_and_cancels(shop):
    from conftest import run_cli

    ref = shop.pay(shop.account("anonimo"))
    shop.paid_at(ref, datetime(2026, 5, 10, 12, 0))
    cli = ["--config", str(shop.config)]
    # The lifecycle run issues the month before's global factura (once).
    r = run_cli([*cli, "lifecycle", "run", "--today", "2026-06-01"])
    assert r.returncode == 0, r.stderr
    assert "factura global de 2026-05 emitida" in r.stdout
    r = run_cli([*cli, "lifecycle", "run", "--today", "2026-06-01"])
    assert "factura global" not in r.stdout
    r = run_cli([*cli, "invoice", "list", "--json"])
    [row] = __import__("json").loads(r.stdout)
    assert (row["kind"], row["period"], row["status"], row["receptor_rfc"], row["total"]) == (
        "global", "2026-05", "valid", "XAXX010101000", "75.40")
    r = run_cli([*cli, "invoice", "global", "--month", "2026-13"])
    assert r.returncode != 0
    r = run_cli([*cli, "invoice", "cancel", str(row["id"]), "04"])
    assert r.returncode == 0 and "cancelled" in r.stdout, r.stderr
    with shop.db.session() as s:
        who = s.scalar(select(AuditRecord.user).where(AuditRecord.action == "invoice_cancelled"))
    assert who.startswith("cli:")


class ReceptorMustAcceptPac(pac.SandboxPac):
    """A PAC whose cancellations wait for the receptor, who answers ``answer``."""

    answer: str | None = None

    def cancel(self, request: pac.CancelRequest) -> pac.Cancelled:
        return pac.Cancelled("pending", "<Acuse EstatusUUID='202'/>")

    def cancellation_status(self, request: pac.CancelRequest) -> pac.Cancelled | None:
        return pac.Cancelled(self.answer, "<Acuse/>") if self.answer else None


@pytest.mark.db
def test_a_cancellation_the_receptor_must_accept_ends_when_it_answers(shop):
    slow = ReceptorMustAcceptPac(shop.settings)
    first = shop.issue(shop.pay(moral(shop)))
    assert invoice_cancel.cancel(shop.settings, shop.db, first.id, "03", actor=OPERATOR,
                                 pac=slow).status == "cancel_pending"
    invoicing.run(shop.settings, shop.db, shop.mailer, pac=slow)  # no answer yet
    assert invoice_records.get_invoice(shop.db, first.id).status == "cancel_pending"
    slow.answer = "rejected"
    invoicing.run(shop.settings, shop.db, shop.mailer, pac=slow)
    assert invoice_records.get_invoice(shop.db, first.id).status == "valid"
    invoice_cancel.cancel(shop.settings, shop.db, first.id, "03", actor=OPERATOR, pac=slow)
    slow.answer = "cancelled"
    invoicing.run(shop.settings, shop.db, shop.mailer, pac=slow)
    assert invoice_records.get_invoice(shop.db, first.id).status == "cancelled"
    # A replaced one waiting for its receptor never blocks its substitute.
    second = shop.issue(first.order_reference, operator=True)
    slow.answer = None
    new = invoicing.substitute(shop.settings, shop.db, shop.mailer, second.id,
                               actor=OPERATOR, pac=slow)
    assert invoice_records.get_invoice(shop.db, second.id).status == "pending_01"
    assert invoice_records.get_invoice(shop.db, new.id).status == "valid"
    with shop.db.session() as s:
        actions = list(s.scalars(select(AuditRecord.action).order_by(AuditRecord.id)
                                 .where(AuditRecord.action.like("invoice%"))))
    assert actions.count("invoice_cancel_rejected") == 1
    assert actions.count("invoice_cancelled") == 4


@pytest.mark.db
def test_a_refund_cancels_the_factura_with_motivo_03_and_is_audited(shop):
    from spaces.commerce import refunds
    from spaces.core.models import PaymentEvent

    invoiced = shop.issue(shop.pay(moral(shop)))
    done = refunds.refund_order(shop.settings, shop.db, invoiced.order_reference or "",
                                actor=OPERATOR)
    assert done.factura == f"cancelada ({invoiced.uuid})" and done.amount == "$75.40"
    after = invoice_records.get_invoice(shop.db, invoiced.id)
    assert after.status == "cancelled" and after.cancel_reason == "03"
    assert billing.get_order(shop.db, invoiced.order_reference or "").status == "refunded"
    with pytest.raises(Forbidden):
        refunds.refund_order(shop.settings, shop.db, invoiced.order_reference or "",
                             actor=OPERATOR)
    with pytest.raises(SpaceError):
        shop.issue(invoiced.order_reference or "", operator=True)
    # Not invoiced yet: refunded, and it never enters the month's global factura.
    plain = shop.pay(shop.account("sinfactura"))
    shop.paid_at(plain, datetime(2026, 7, 3, 12, 0))
    assert refunds.refund_order(shop.settings, shop.db, plain, actor=OPERATOR).factura \
        == "sin factura"
    assert shop.issue_global(2026, 7, datetime(2026, 8, 2).replace(tzinfo=pac.UTC)) is None
    # In a global factura: recorded, and the operator is told a nota de crédito is due.
    sold = shop.pay(shop.account("ventaglobal"))
    shop.paid_at(sold, datetime(2026, 7, 4, 12, 0))
    assert shop.issue_global(2026, 7, datetime(2026, 8, 2).replace(tzinfo=pac.UTC))
    assert "nota de crédito" in refunds.refund_order(shop.settings, shop.db, sold,
                                                     actor=OPERATOR).factura
    with shop.db.session() as s:
        refunds_audited = s.execute(select(AuditRecord.user, AuditRecord.detail)
                                    .where(AuditRecord.action == "order_refunded")).all()
        events = s.scalars(select(PaymentEvent.outcome)
                           .where(PaymentEvent.outcome == "refunded")).all()
    assert len(refunds_audited) == 3 and len(events) == 3
    assert all(r.user == "operator:root" for r in refunds_audited)
