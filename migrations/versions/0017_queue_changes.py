"""Batched queue changes (app/delivery/store/queue_change.py): a distribution's pending change of
its queue (hold, release, skip) and the rows changed so far; the waiting rows by distribution.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 07:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Waiting rows only: a batch reads what it changes, not the distribution's history.
# `distribution_id IS NOT NULL` is implied by a batch's `distribution_id = $1` and by no claim
# (see app/delivery/store/claims.py, "Why the plans are stable").
_INDEX = (
    "ix_deliveries_waiting_by_distribution",
    "ON deliveries (distribution_id, next_attempt_at, id)"
    " WHERE distribution_id IS NOT NULL AND status IN ('pending', 'in_flight')",
)


def upgrade() -> None:
    # Nullable, and a constant default: neither rewrites the table.
    op.add_column("distributions", sa.Column("queue_change", sa.String(10)))
    op.add_column(
        "distributions",
        sa.Column("queue_changed", sa.Integer(), nullable=False, server_default="0"),
    )
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {_INDEX[0]}")
        op.execute(f"CREATE INDEX CONCURRENTLY {_INDEX[0]} {_INDEX[1]}")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {_INDEX[0]}")
    op.drop_column("distributions", "queue_changed")
    op.drop_column("distributions", "queue_change")
