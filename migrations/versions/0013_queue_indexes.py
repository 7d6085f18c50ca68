"""deliveries: one partial index per queue probe instead of ix_deliveries_due, so that no claim
can pick an index that does not serve it (see app/delivery/claims.py, "Why the plans are stable")

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 17:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Built CONCURRENTLY: on a deployment with months of history each build reads the whole table,
# and a plain CREATE INDEX would hold off every webhook insert meanwhile.
_INDEXES = {
    "ix_deliveries_waiting_by_user": (
        "(braze_user_key) WHERE status IN ('pending', 'in_flight') AND attributes IS NOT NULL"
        " AND braze_user_key IS NOT NULL"
    ),
    # With the id: claims read it in windows of (time, id), each starting after the last.
    "ix_deliveries_due_to_send": (
        "(next_attempt_at, id) WHERE status = 'pending' AND attributes IS NOT NULL"
    ),
    "ix_deliveries_due_to_publish": "(next_attempt_at) WHERE status = 'pending' AND attributes IS NULL",
    "ix_deliveries_leased": (
        "(lease_expires_at) WHERE status = 'in_flight' AND lease_expires_at IS NOT NULL"
    ),
}
_OLD = {"ix_deliveries_due": "(next_attempt_at) WHERE status IN ('pending', 'in_flight')"}


def _build(indexes: dict[str, str]) -> None:
    with op.get_context().autocommit_block():
        for name, definition in indexes.items():
            # An interrupted concurrent build leaves an invalid index behind: start afresh.
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            op.execute(f"CREATE INDEX CONCURRENTLY {name} ON deliveries {definition}")


def _drop(names: Sequence[str]) -> None:
    with op.get_context().autocommit_block():
        for name in names:
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


def upgrade() -> None:
    _build(_INDEXES)
    _drop(list(_OLD))


def downgrade() -> None:
    _build(_OLD)
    _drop(list(_INDEXES))
