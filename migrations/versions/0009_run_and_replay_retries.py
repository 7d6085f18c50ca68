"""runs.failures, runs.next_try_at: a run backs off while Voucherify is unavailable, then gives
up; replays.batch_attempts: a bulk replay batch that keeps failing ends the replay

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 16:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("failures", sa.Integer(), server_default="0", nullable=False))
    op.add_column("runs", sa.Column("next_try_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "replays", sa.Column("batch_attempts", sa.Integer(), server_default="0", nullable=False)
    )


def downgrade() -> None:
    op.drop_column("replays", "batch_attempts")
    op.drop_column("runs", "next_try_at")
    op.drop_column("runs", "failures")
