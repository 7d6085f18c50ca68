"""attribute_state.doubt_event_time, attribute_state.sent_at: the newest event of a send whose
outcome is unknown (older events are stale against it), and when Braze last accepted the value
(it is trusted for ATTRIBUTE_TRUST_DAYS)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "attribute_state",
        sa.Column("doubt_event_time", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "attribute_state", sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True)
    )
    # Until now a row changed only when Braze accepted its value (or when a later send failed
    # and marked it uncertain): its last change is the best known time of acceptance.
    op.execute("UPDATE attribute_state SET sent_at = updated_at WHERE NOT uncertain")


def downgrade() -> None:
    op.drop_column("attribute_state", "sent_at")
    op.drop_column("attribute_state", "doubt_event_time")
