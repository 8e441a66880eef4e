"""WebDAV dead properties count toward the plan: the bytes of the properties
every space already holds (names and values, UTF-8) are added to its ``used``.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def _apply(sign: int) -> None:
    bind = op.get_bind()
    totals: dict[str, int] = {}
    for path, name, value in bind.execute(sa.text(
            "SELECT path, name, value FROM dav_properties")):
        parts = str(path).split("/")
        if len(parts) >= 3 and parts[1] == "dav" and parts[2]:
            totals[parts[2]] = (totals.get(parts[2], 0) + len(str(name).encode("utf-8"))
                                + len(str(value).encode("utf-8")))
    for space, nbytes in totals.items():
        bind.execute(sa.text("UPDATE spaces SET used_bytes = used_bytes + :n WHERE name = :s"),
                     {"n": sign * nbytes, "s": space})


def upgrade() -> None:
    _apply(1)


def downgrade() -> None:
    _apply(-1)
