"""Columns holding values taken from webhooks and Voucherify take any length (text); event
times far in the future are brought back to when they were received; replays.state_reset

A customer `source_id` of 300 characters (Braze takes external ids up to 987 bytes) did not fit
`deliveries.braze_user_key` (varchar 300): the webhook was answered 500 on every try, so
Voucherify retried it for a day and never got it stored. The length is now bounded where the
value is made, with a reason (the mapping skips an identifier over 987 bytes as
`no_identifier`; a run member key over 1,024 bytes is kept as its start and a digest), not by a
column that fails the insert. varchar to text changes no stored byte: Postgres rewrites neither table nor index.

Event times more than a day ahead of when they were received (a `created_at` in year 9999 was
seen) were stored as they came and made every later event of that user `stale`. Intake now
replaces them (EVENT_TIME_MAX_AHEAD_SECONDS); the rows stored before are brought back here to
the time they were received (recorded, for attribute_state), with the default bound of a day.

replays.state_reset: how many recorded event times a forced replay set back so that its value
wins over `stale` (app/delivery/state_reset.py).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column, the type before)
_WIDENED = (
    ("deliveries", "braze_user_key", sa.String(length=300)),
    ("deliveries", "run_member", sa.String(length=255)),
    ("attribute_state", "braze_user_key", sa.String(length=300)),
    ("webhook_events", "customer_id", sa.String(length=100)),
    ("webhook_events", "customer_source_id", sa.String(length=255)),
    ("webhook_events", "send_out_id", sa.String(length=100)),
    ("webhook_events", "project_id", sa.String(length=100)),
)

# Only what cannot be true: a time over a day past the moment the row was written.
_REPAIRS = (
    """
    UPDATE webhook_events SET event_created_at = received_at
    WHERE event_created_at > received_at + interval '1 day'
    """,
    """
    UPDATE deliveries AS d SET event_time = coalesce(
        (SELECT e.received_at FROM webhook_events AS e WHERE e.id = d.event_id), d.created_at)
    WHERE d.event_time > d.created_at + interval '1 day'
    """,
    """
    UPDATE attribute_state SET event_time = updated_at
    WHERE event_time > updated_at + interval '1 day'
    """,
)


def upgrade() -> None:
    for table, column, before in _WIDENED:
        op.alter_column(table, column, type_=sa.Text(), existing_type=before)
    for statement in _REPAIRS:
        op.execute(statement)
    op.add_column(
        "replays", sa.Column("state_reset", sa.Integer(), server_default="0", nullable=False)
    )


def downgrade() -> None:
    op.drop_column("replays", "state_reset")
    # Fails (changing nothing) if a longer value was stored meanwhile: cutting an identifier
    # short would address another Braze user. The repaired event times stay repaired.
    for table, column, before in reversed(_WIDENED):
        op.alter_column(table, column, type_=before, existing_type=sa.Text())
