"""runs.resumed_at, runs.resumed_by, runs.resumes: who resumed a run that gave up, and how often

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29 18:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("resumed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("runs", sa.Column("resumed_by", sa.String(length=100), nullable=True))
    op.add_column("runs", sa.Column("resumes", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    op.drop_column("runs", "resumes")
    op.drop_column("runs", "resumed_by")
    op.drop_column("runs", "resumed_at")
