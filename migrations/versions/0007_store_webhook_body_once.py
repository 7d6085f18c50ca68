"""store each webhook body once: drop the jsonb copy of the raw body

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 14:40:00

`raw_body` holds the exact bytes and the envelope's fields are columns; the jsonb copy of the
whole body doubled every row past the toast target, and building and compressing it cost about
half of the database's CPU per webhook. Readers parse `raw_body` instead.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_column("webhook_events", "envelope")


def downgrade() -> None:
    op.add_column(
        "webhook_events",
        sa.Column("envelope", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    # Every stored body was accepted as UTF-8 JSON; jsonb refuses only the NUL character.
    op.execute(
        "UPDATE webhook_events SET envelope ="
        " replace(convert_from(raw_body, 'UTF8'), '\\u0000', '')::jsonb"
        " WHERE raw_body IS NOT NULL"
    )
