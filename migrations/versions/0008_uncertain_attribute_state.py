"""attribute_state.uncertain: a send with an unknown outcome makes the known value unreliable

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 15:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "attribute_state",
        sa.Column("uncertain", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("attribute_state", "uncertain")
