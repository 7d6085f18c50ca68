"""braze_gate.failing_since, braze_gate.failed_requests: a Braze outage is noticed, and its end
makes the deliveries waiting on a retry due at once

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 16:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "braze_gate", sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "braze_gate",
        sa.Column("failed_requests", sa.Integer(), server_default="0", nullable=False),
    )


def downgrade() -> None:
    op.drop_column("braze_gate", "failed_requests")
    op.drop_column("braze_gate", "failing_since")
