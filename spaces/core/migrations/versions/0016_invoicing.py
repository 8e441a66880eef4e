"""Facturación: fiscal data per account, how an order was paid and whether it is
invoiced, and the facturas (CFDI 4.0) the operator issued.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

LIVE = "status IN ('stamping', 'valid', 'cancelling', 'cancel_pending')"


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("razon_social", sa.String(300), nullable=True))
        batch.add_column(sa.Column("regimen_fiscal", sa.String(3), nullable=True))
        batch.add_column(sa.Column("codigo_postal", sa.String(5), nullable=True))
        batch.add_column(sa.Column("uso_cfdi", sa.String(4), nullable=True))
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("payment_method", sa.String(16), nullable=True))
        batch.add_column(sa.Column("invoice_requested", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("invoice_state", sa.String(8), nullable=False,
                                   server_default="none"))
        batch.add_column(sa.Column("global_invoice_id", sa.Integer(), nullable=True))
    op.create_index("ix_orders_global_invoice_id", "orders", ["global_invoice_id"])
    op.create_table(
        "invoices",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("order_id", sa.Integer(), sa.ForeignKey("orders.id", ondelete="RESTRICT"),
                  nullable=True),
        sa.Column("account_id", sa.Integer(),
                  sa.ForeignKey("accounts.id", ondelete="SET NULL"), nullable=True),
        sa.Column("period", sa.String(7), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("serie", sa.String(25), nullable=False),
        sa.Column("folio", sa.String(40), nullable=False),
        sa.Column("uuid", sa.String(36), nullable=True, unique=True),
        sa.Column("pac", sa.String(32), nullable=False),
        sa.Column("sandbox", sa.Boolean(), nullable=False),
        sa.Column("receptor_rfc", sa.String(13), nullable=False),
        sa.Column("receptor_nombre", sa.String(300), nullable=False),
        sa.Column("uso_cfdi", sa.String(4), nullable=False),
        sa.Column("forma_pago", sa.String(2), nullable=False),
        sa.Column("subtotal_cents", sa.BigInteger(), nullable=False),
        sa.Column("discount_cents", sa.BigInteger(), nullable=False),
        sa.Column("tax_cents", sa.BigInteger(), nullable=False),
        sa.Column("total_cents", sa.BigInteger(), nullable=False),
        sa.Column("fecha", sa.String(19), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("stamped_at", sa.DateTime(), nullable=True),
        sa.Column("xml", sa.Text(), nullable=False),
        sa.Column("pdf", sa.LargeBinary(), nullable=True),
        sa.Column("replaces_uuid", sa.String(36), nullable=True),
        sa.Column("cancel_reason", sa.String(2), nullable=True),
        sa.Column("cancel_replacement", sa.String(36), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(), nullable=True),
        sa.Column("cancelled_by", sa.String(160), nullable=True),
        sa.Column("cancel_ack", sa.Text(), nullable=True),
        sa.Column("mailed_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_invoices_order_id", "invoices", ["order_id"])
    op.create_index("ix_invoices_account_id", "invoices", ["account_id"])
    op.create_index("uq_invoices_live_order", "invoices", ["order_id"], unique=True,
                    sqlite_where=sa.text(LIVE), postgresql_where=sa.text(LIVE))
    op.create_index("uq_invoices_live_period", "invoices", ["period"], unique=True,
                    sqlite_where=sa.text(LIVE), postgresql_where=sa.text(LIVE))


def downgrade() -> None:
    op.drop_table("invoices")
    op.drop_index("ix_orders_global_invoice_id", table_name="orders")
    with op.batch_alter_table("orders") as batch:
        for name in ("global_invoice_id", "invoice_state", "invoice_requested",
                     "payment_method"):
            batch.drop_column(name)
    with op.batch_alter_table("accounts") as batch:
        for name in ("uso_cfdi", "codigo_postal", "regimen_fiscal", "razon_social"):
            batch.drop_column(name)
