"""Per-plan limits on the number of entries (files and folders, the trash and
earlier versions included) and on path depth: ``max_entries`` and
``max_depth`` on every space, from its tier (the installation's settings when
the migration runs with them, else the built-in tiers, else one entry per 8 KiB
of quota and 64 levels).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def _limits(settings: Any, tier: str, quota_bytes: int) -> tuple[int, int]:
    from spaces.core import plans
    from spaces.core.errors import NotFound
    from spaces.core.settings import Settings

    for source in (settings, Settings()):
        if source is None:
            continue
        try:
            t = plans.get_tier(source, tier)
            return t.max_entries, t.max_depth
        except NotFound:
            pass
    return plans.entries_for(quota_bytes), 64


def upgrade() -> None:
    op.add_column("spaces", sa.Column("max_entries", sa.BigInteger(), nullable=False,
                                      server_default="0"))
    op.add_column("spaces", sa.Column("max_depth", sa.Integer(), nullable=False,
                                      server_default="64"))
    config = op.get_context().config
    settings = config.attributes.get("settings") if config is not None else None
    bind = op.get_bind()
    for sid, tier, quota_bytes in bind.execute(
            sa.text("SELECT id, tier, quota_bytes FROM spaces")).all():
        entries, depth = _limits(settings, tier, int(quota_bytes))
        bind.execute(sa.text("UPDATE spaces SET max_entries = :e, max_depth = :d "
                             "WHERE id = :sid"), {"e": entries, "d": depth, "sid": sid})


def downgrade() -> None:
    with op.batch_alter_table("spaces") as batch:
        batch.drop_column("max_depth")
        batch.drop_column("max_entries")
