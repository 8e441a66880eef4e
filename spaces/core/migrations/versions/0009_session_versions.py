"""Server-side session versions: a portal session names the version of its
account or drive user, and logout, a password change, a removal or a
suspension renews the version, so every older cookie stops working at once.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("accounts", "members"):
        op.add_column(table, sa.Column("session_version", sa.String(32), nullable=False,
                                       server_default=""))
        t = sa.table(table, sa.column("id", sa.Integer),
                     sa.column("session_version", sa.String))
        conn = op.get_bind()
        for (row_id,) in conn.execute(sa.select(t.c.id)).all():
            conn.execute(t.update().where(t.c.id == row_id)
                         .values(session_version=secrets.token_hex(16)))


def downgrade() -> None:
    for table in ("members", "accounts"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("session_version")
