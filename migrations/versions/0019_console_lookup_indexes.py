"""Indexes of the ops console: events by customer (source id, Voucherify id), attempts by
time (the overview's per-minute counts, failures and data points saved), and the failed
deliveries and events newest first

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05 07:12:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Built CONCURRENTLY: with months of history each build reads a whole table, and a plain
# CREATE INDEX would hold off every webhook insert meanwhile.
_INDEXES = {
    "ix_webhook_events_customer_source_id": "webhook_events USING hash (customer_source_id)",
    "ix_webhook_events_customer_id": "webhook_events USING hash (customer_id)",
    "ix_delivery_attempts_attempted_at": "delivery_attempts (attempted_at)",
    # The console's most used filters, newest first: failures are few, so are these indexes.
    "ix_deliveries_failed": "deliveries (id) WHERE status IN ('failed', 'dead')",
    "ix_webhook_events_failed": "webhook_events (id) WHERE outcome = 'failed'",
}


def upgrade() -> None:
    with op.get_context().autocommit_block():
        for name, definition in _INDEXES.items():
            # An interrupted concurrent build leaves an invalid index behind: start afresh.
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            op.execute(f"CREATE INDEX CONCURRENTLY {name} ON {definition}")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name in _INDEXES:
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
