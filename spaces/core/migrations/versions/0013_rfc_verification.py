"""An RFC belongs to one account: the Constancia de Situación Fiscal an account
uploads, an operator's verification, and a unique index on verified RFCs.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("rfc_verified_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("rfc_verified_by", sa.String(160), nullable=True))
        batch.add_column(sa.Column("rfc_document", sa.String(80), nullable=True))
        batch.add_column(sa.Column("rfc_document_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("rfc_review_note", sa.String(300), nullable=True))
    op.create_index("uq_accounts_verified_rfc", "accounts", ["rfc"], unique=True,
                    sqlite_where=sa.text("rfc_verified_at IS NOT NULL"),
                    postgresql_where=sa.text("rfc_verified_at IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("uq_accounts_verified_rfc", table_name="accounts")
    with op.batch_alter_table("accounts") as batch:
        for name in ("rfc_review_note", "rfc_document_at", "rfc_document",
                     "rfc_verified_by", "rfc_verified_at"):
            batch.drop_column(name)
