"""A plan change credits the unused days of the plan it replaces.

Each order line keeps the credit as its own figure (shown as its own line on
the breakdown and the receipt): how much, how many days and of which plan. The
line's ``discount_cents`` includes it (a CFDI carries both as the concept's
Descuento).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("order_items") as batch:
        batch.add_column(sa.Column("credit_cents", sa.BigInteger(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("credit_days", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("credit_tier", sa.String(16), nullable=True))
        batch.add_column(sa.Column("extra_days", sa.Integer(), nullable=False,
                                   server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("order_items") as batch:
        for name in ("extra_days", "credit_tier", "credit_days", "credit_cents"):
            batch.drop_column(name)
