"""Columns holding values taken from webhooks and Voucherify take any length (text)

A customer `source_id` of 300 characters (Braze takes external ids up to 987 bytes) did not fit
`deliveries.braze_user_key` (varchar 300): the webhook was answered 500 on every try, so
Voucherify retried it for a day and never got it stored. The length is now bounded where the
value is made, with a reason (the mapping skips an identifier over 987 bytes as
`no_identifier`), not by a column that fails the insert. varchar to text changes no stored byte: Postgres rewrites neither table nor index.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
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


def upgrade() -> None:
    for table, column, before in _WIDENED:
        op.alter_column(table, column, type_=sa.Text(), existing_type=before)


def downgrade() -> None:
    # Fails (changing nothing) if a longer value was stored meanwhile: cutting an identifier
    # short would address another Braze user.
    for table, column, before in reversed(_WIDENED):
        op.alter_column(table, column, type_=before, existing_type=sa.Text())
