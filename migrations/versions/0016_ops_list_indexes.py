"""Indexes for the ops lists: every documented filter of /events and /deliveries, in the lists'
page order (id, newest first), so that a page reads its rows and not the history before them.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 07:15:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, columns[, WHERE]). Built CONCURRENTLY, as 0013 did: on months of history each build
# reads the whole table, and a plain CREATE INDEX would hold off every webhook insert meanwhile.
_INDEXES = {
    "ix_webhook_events_event_type_id": ("webhook_events", "(event_type, id)"),
    "ix_webhook_events_outcome_id": ("webhook_events", "(outcome, id)"),
    # The customer filters use 0019's hash indexes: a btree entry over an unbounded customer id
    # past ~2.7 kB would fail the webhook's insert.
    "ix_deliveries_distribution_id_id": ("deliveries", "(distribution_id, id)"),
    # Settled statuses only: an index over waiting rows too could serve the claims' status
    # conditions, which must find only their own indexes (app/delivery/store/claims.py). The list
    # names the status as a literal so that its query implies this predicate.
    "ix_deliveries_settled_status_id": (
        "deliveries",
        "(status, id) WHERE status NOT IN ('pending', 'in_flight')",
    ),
    "ix_deliveries_braze_user_key_id": ("deliveries", "(braze_user_key, id)"),
    "ix_deliveries_trigger_id": ("deliveries", "(trigger, id)"),
    "ix_deliveries_run_id_id": ("deliveries", "(run_id, id) WHERE run_id IS NOT NULL"),
    "ix_deliveries_created_at": ("deliveries", "(created_at)"),
}
# Served by the (braze_user_key, id) index above, which also gives the page order.
_REPLACED = {"ix_deliveries_braze_user_key": ("deliveries", "(braze_user_key)")}


def _build(indexes: dict[str, tuple[str, str]]) -> None:
    with op.get_context().autocommit_block():
        for name, (table, definition) in indexes.items():
            # An interrupted concurrent build leaves an invalid index behind: start afresh.
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            op.execute(f"CREATE INDEX CONCURRENTLY {name} ON {table} {definition}")


def _drop(names: Sequence[str]) -> None:
    with op.get_context().autocommit_block():
        for name in names:
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


def upgrade() -> None:
    _build(_INDEXES)
    _drop(list(_REPLACED))


def downgrade() -> None:
    _build(_REPLACED)
    _drop(list(_INDEXES))
