"""Withdrawals in batches (app/delivery/store/withdrawal.py): a canceled replay or run is marked
`withdrawing` until none of its deliveries waits or is on its way, with the count withdrawn so
far; who canceled a replay and when; the waiting rows by replay and by run.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Waiting rows only (pending, and in flight: a send on its way may come back as a retry), so
# that a batch reads what it withdraws, never a replay's or a run's history. `replay_id IS NOT
# NULL` / `run_id IS NOT NULL` are implied by a batch's `replay_id = $1` and by no claim (see
# app/delivery/store/claims.py, "Why the plans are stable"). Built CONCURRENTLY, as 0016 and
# 0017: a plain CREATE INDEX would hold off every write to deliveries for the whole build.
_INDEXES = {
    "ix_deliveries_waiting_by_replay": "deliveries (replay_id, id)"
    " WHERE replay_id IS NOT NULL AND status IN ('pending', 'in_flight')",
    "ix_deliveries_waiting_by_run": "deliveries (run_id, id)"
    " WHERE run_id IS NOT NULL AND status IN ('pending', 'in_flight')",
    # The claims read the ids being withdrawn once per statement: an index over none, mostly.
    "ix_replays_withdrawing": "replays (id) WHERE withdrawing",
    "ix_runs_withdrawing": "runs (id) WHERE withdrawing",
}
# The same rows as ix_deliveries_waiting_by_run, which also serves the run lane's "is any of
# its deliveries on its way" (app/runs/store.py).
_REPLACED = {
    "ix_deliveries_run_open": "deliveries (run_id)"
    " WHERE run_id IS NOT NULL AND status IN ('pending', 'in_flight')",
}


def _build(indexes: dict[str, str]) -> None:
    with op.get_context().autocommit_block():
        for name, definition in indexes.items():
            # An interrupted concurrent build leaves an invalid index behind: start afresh.
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            op.execute(f"CREATE INDEX CONCURRENTLY {name} ON {definition}")


def _drop(names: Sequence[str]) -> None:
    with op.get_context().autocommit_block():
        for name in names:
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


def upgrade() -> None:
    # Constant defaults and nullable columns: none rewrites its table.
    for table in ("replays", "runs"):
        op.add_column(
            table,
            sa.Column("withdrawing", sa.Boolean(), nullable=False, server_default=sa.false()),
        )
        op.add_column(
            table, sa.Column("withdrawn", sa.Integer(), nullable=False, server_default="0")
        )
    op.add_column("replays", sa.Column("canceled_at", sa.DateTime(timezone=True)))
    op.add_column("replays", sa.Column("canceled_by", sa.String(100)))
    _build(_INDEXES)
    _drop(list(_REPLACED))


def downgrade() -> None:
    _build(_REPLACED)
    _drop(list(_INDEXES))
    op.drop_column("replays", "canceled_by")
    op.drop_column("replays", "canceled_at")
    for table in ("runs", "replays"):
        op.drop_column(table, "withdrawn")
        op.drop_column(table, "withdrawing")
