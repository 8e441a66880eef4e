"""CFDI purge notices: when the owner was told a document will be purged.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cfdi_documents") as batch:
        batch.add_column(sa.Column("first_notice_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("final_notice_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cfdi_documents") as batch:
        batch.drop_column("final_notice_at")
        batch.drop_column("first_notice_at")
