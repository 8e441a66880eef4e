"""Trash bin and file versions of each space.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trash_items",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("space_id", sa.Integer(), sa.ForeignKey("spaces.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("token", sa.String(64), nullable=False, unique=True),
        sa.Column("path", sa.String(2048), nullable=False),
        sa.Column("is_dir", sa.Boolean(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("files", sa.BigInteger(), nullable=False),
        sa.Column("trashed_at", sa.DateTime(), nullable=False),
        sa.Column("trashed_by", sa.String(160), nullable=True),
    )
    op.create_index("ix_trash_items_space_id", "trash_items", ["space_id"])
    op.create_index("ix_trash_items_trashed_at", "trash_items", ["trashed_at"])
    op.create_table(
        "file_versions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("space_id", sa.Integer(), sa.ForeignKey("spaces.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("token", sa.String(64), nullable=False, unique=True),
        sa.Column("path", sa.String(2048), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mtime", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(160), nullable=True),
    )
    op.create_index("ix_file_versions_space_id", "file_versions", ["space_id"])
    op.create_index("ix_file_versions_created_at", "file_versions", ["created_at"])
    op.create_table(
        "rename_trails",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("space_id", sa.Integer(), sa.ForeignKey("spaces.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("path", sa.String(2048), nullable=False),
        sa.Column("origin", sa.String(2048), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_rename_trails_space_id", "rename_trails", ["space_id"])


def downgrade() -> None:
    op.drop_table("rename_trails")
    op.drop_table("file_versions")
    op.drop_table("trash_items")
