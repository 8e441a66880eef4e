"""CFDI index and legal holds.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cfdi_documents",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("space_id", sa.Integer(), sa.ForeignKey("spaces.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("path", sa.String(2048), nullable=False),
        sa.Column("category", sa.String(24), nullable=False),
        sa.Column("reason", sa.String(255), nullable=True),
        sa.Column("uuid", sa.String(36), nullable=True),
        sa.Column("version", sa.String(8), nullable=True),
        sa.Column("tipo", sa.String(16), nullable=True),
        sa.Column("emisor_rfc", sa.String(16), nullable=True),
        sa.Column("emisor_nombre", sa.String(300), nullable=True),
        sa.Column("receptor_rfc", sa.String(40), nullable=True),
        sa.Column("receptor_nombre", sa.String(300), nullable=True),
        sa.Column("fecha", sa.String(32), nullable=True),
        sa.Column("fecha_timbrado", sa.String(32), nullable=True),
        sa.Column("total", sa.String(32), nullable=True),
        sa.Column("monto_pagado", sa.String(32), nullable=True),
        sa.Column("moneda", sa.String(8), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("ingested_at", sa.DateTime(), nullable=False),
        sa.Column("protected_until", sa.DateTime(), nullable=True),
        sa.Column("duplicate_of", sa.Integer(), nullable=True),
        sa.Column("conflict", sa.Boolean(), nullable=False),
        sa.Column("cancelled", sa.Boolean(), nullable=False),
        sa.Column("released_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_cfdi_documents_space_id", "cfdi_documents", ["space_id"])
    op.create_index("ix_cfdi_documents_uuid", "cfdi_documents", ["uuid"])
    op.create_index("ix_cfdi_documents_emisor_rfc", "cfdi_documents", ["emisor_rfc"])
    op.create_index("ix_cfdi_documents_receptor_rfc", "cfdi_documents", ["receptor_rfc"])
    op.create_table(
        "cfdi_holds",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("space_id", sa.Integer(), sa.ForeignKey("spaces.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("path", sa.String(2048), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("placed_by", sa.String(128), nullable=False),
        sa.Column("placed_at", sa.DateTime(), nullable=False),
        sa.Column("lifted_by", sa.String(128), nullable=True),
        sa.Column("lifted_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_cfdi_holds_space_id", "cfdi_holds", ["space_id"])


def downgrade() -> None:
    op.drop_table("cfdi_holds")
    op.drop_table("cfdi_documents")
