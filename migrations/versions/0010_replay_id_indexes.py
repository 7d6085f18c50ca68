"""deliveries.replay_id and delivery_attempts.replay_id: partial indexes, so that retention
deleting a replay (ON DELETE SET NULL on both) does not scan both tables once per replay

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 16:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("deliveries", "delivery_attempts"):
        op.create_index(
            f"ix_{table}_replay_id",
            table,
            ["replay_id"],
            unique=False,
            postgresql_where=sa.text("replay_id IS NOT NULL"),
        )


def downgrade() -> None:
    for table in ("delivery_attempts", "deliveries"):
        op.drop_index(f"ix_{table}_replay_id", table_name=table)
