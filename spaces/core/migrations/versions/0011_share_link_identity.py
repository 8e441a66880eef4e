"""Share links bound to the object they were made for: its inode (which a rename
keeps and a replacement changes) and when it was deleted.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("share_links") as batch:
        batch.add_column(sa.Column("inode", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("gone_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("share_links") as batch:
        batch.drop_column("gone_at")
        batch.drop_column("inode")
