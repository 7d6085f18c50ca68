"""keep webhook bodies inline: no compression or TOAST on the intake hot path

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 13:15:00

A stored webhook row holds the raw body and its jsonb envelope, together several KB. Past
Postgres' default 2 KB toast target every insert compressed both (pglz) and wrote them to the
TOAST table: most of the database's CPU per webhook. Up to ~8 KB rows now stay inline and
uncompressed; larger bodies are still toasted as before.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE webhook_events SET (toast_tuple_target = 8160)")


def downgrade() -> None:
    op.execute("ALTER TABLE webhook_events RESET (toast_tuple_target)")
