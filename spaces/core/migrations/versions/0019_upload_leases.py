"""Upload leases: each reservation an upload holds in a space's counters has a
row saying which process holds it and until when, so any node can give back
the reservation of a crashed process or of an upload cut off by a database
outage (see spaces.quota), and a recount can count the uploads in flight.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "upload_leases",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("space_id", sa.Integer(), sa.ForeignKey("spaces.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("node", sa.String(64), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("tmp_name", sa.String(255), nullable=False),
        sa.Column("used_bytes", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("used_files", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("held_bytes", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_upload_leases_space_id", "upload_leases", ["space_id"])
    op.create_index("ix_upload_leases_expires_at", "upload_leases", ["expires_at"])


def downgrade() -> None:
    op.drop_table("upload_leases")
