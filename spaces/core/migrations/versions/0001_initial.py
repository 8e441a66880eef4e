"""Spaces, members, WebDAV dead properties and locks.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "spaces",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("tier", sa.String(16), nullable=False),
        sa.Column("quota_bytes", sa.BigInteger(), nullable=False),
        sa.Column("max_users", sa.Integer(), nullable=True),
        sa.Column("used_bytes", sa.BigInteger(), nullable=False),
        sa.Column("used_files", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("owner_email", sa.String(254), nullable=True),
        sa.Column("paid_until", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "members",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "space_id", sa.Integer(), sa.ForeignKey("spaces.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("space_id", "username", name="uq_members_space_user"),
    )
    op.create_index("ix_members_space_id", "members", ["space_id"])
    op.create_table(
        "dav_properties",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("path", sa.String(2048), nullable=False),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.UniqueConstraint("path", "name", name="uq_dav_properties_path_name"),
    )
    op.create_index("ix_dav_properties_path", "dav_properties", ["path"])
    op.create_table(
        "dav_locks",
        sa.Column("token", sa.String(128), primary_key=True),
        sa.Column("root", sa.String(2048), nullable=False),
        sa.Column("principal", sa.String(128), nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("depth", sa.String(16), nullable=False),
        sa.Column("timeout", sa.Float(), nullable=False),
        sa.Column("expire", sa.Float(), nullable=False),
    )
    op.create_index("ix_dav_locks_root", "dav_locks", ["root"])


def downgrade() -> None:
    op.drop_table("dav_locks")
    op.drop_table("dav_properties")
    op.drop_index("ix_members_space_id", table_name="members")
    op.drop_table("members")
    op.drop_table("spaces")
