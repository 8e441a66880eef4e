"""The brute-force pause in the database, shared by every door, process and node.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_failures",
        sa.Column("subject", sa.String(64), primary_key=True),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_at", sa.Float(), nullable=False),
        sa.Column("blocked_until", sa.Float(), nullable=False),
    )
    op.create_index("ix_login_failures_blocked_until", "login_failures", ["blocked_until"])


def downgrade() -> None:
    op.drop_index("ix_login_failures_blocked_until", table_name="login_failures")
    op.drop_table("login_failures")
