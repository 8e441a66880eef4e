"""The plan counts current files only; trash and versions live in a reserve.

Adds ``reserve_bytes`` (the tier's safety reserve, outside the plan) and
``held_bytes``/``held_files`` (what the trash and earlier versions hold) to
every space. Existing spaces get their tier's reserve and their counters moved
out of ``used``: recounted from disk when the migration runs with the
installation's settings (``resguardo migrate``, ``resguardo serve``), else
moved by the trash and version rows. Adds ``lock_placeholders``: the empty
files a LOCK created on a new name, removed when no write follows.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def _settings() -> Any:
    config = op.get_context().config
    return config.attributes.get("settings") if config is not None else None


def _reserve(settings: Any, tier: str, quota_bytes: int) -> int:
    from spaces.core import plans
    from spaces.core.errors import NotFound

    if settings is not None:
        try:
            return plans.get_tier(settings, tier).reserve_bytes
        except NotFound:
            pass
    return plans.reserve_for(quota_bytes)


def upgrade() -> None:
    op.create_table(
        "lock_placeholders",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("space_id", sa.Integer(), sa.ForeignKey("spaces.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("path", sa.String(2048), nullable=False),
        sa.Column("inode", sa.BigInteger(), nullable=False),
        sa.Column("lock_root", sa.String(2048), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_lock_placeholders_space_id", "lock_placeholders", ["space_id"])
    for name in ("reserve_bytes", "held_bytes", "held_files"):
        op.add_column("spaces", sa.Column(name, sa.BigInteger(), nullable=False,
                                          server_default="0"))
    from spaces.files import quota
    from spaces.files.store import store_for

    bind = op.get_bind()
    settings = _settings()
    spaces = bind.execute(sa.text("SELECT id, name, tier, quota_bytes FROM spaces")).all()
    for sid, name, tier, quota_bytes in spaces:
        params: dict[str, Any] = {"sid": sid, "reserve": _reserve(settings, tier, quota_bytes)}
        root = settings.data_path / "spaces" / name / "files" if settings is not None else None
        if root is not None and root.is_dir():
            used_b, used_f, held_b, held_f = quota.measure_space(store_for(settings), root)
            params.update(used_b=used_b, used_f=used_f, held_b=held_b, held_f=held_f)
            bind.execute(sa.text(
                "UPDATE spaces SET reserve_bytes = :reserve, used_bytes = :used_b, "
                "used_files = :used_f, held_bytes = :held_b, held_files = :held_f "
                "WHERE id = :sid"), params)
            continue
        held_b, held_f = bind.execute(sa.text(
            "SELECT COALESCE(SUM(size), 0), COALESCE(SUM(files), 0) FROM trash_items "
            "WHERE space_id = :sid"), {"sid": sid}).one()
        vb, vf = bind.execute(sa.text(
            "SELECT COALESCE(SUM(size), 0), COUNT(*) FROM file_versions WHERE space_id = :sid"),
            {"sid": sid}).one()
        params.update(held_b=int(held_b) + int(vb), held_f=int(held_f) + int(vf))
        bind.execute(sa.text(
            "UPDATE spaces SET reserve_bytes = :reserve, held_bytes = :held_b, "
            "held_files = :held_f, used_bytes = used_bytes - :held_b, "
            "used_files = used_files - :held_f WHERE id = :sid"), params)


def downgrade() -> None:
    op.drop_table("lock_placeholders")
    # The trash and versions counted in the plan again.
    op.execute("UPDATE spaces SET used_bytes = used_bytes + held_bytes, "
               "used_files = used_files + held_files")
    with op.batch_alter_table("spaces") as batch:
        for name in ("held_files", "held_bytes", "reserve_bytes"):
            batch.drop_column(name)
