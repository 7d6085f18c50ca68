"""replays

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 12:10:26.542195
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "replays",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("requested_by", sa.String(length=100), nullable=False),
        sa.Column(
            "requested_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("filter", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("force", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("status", sa.String(length=20), server_default="done", nullable=False),
        sa.Column("queued", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_replays")),
    )
    op.add_column("deliveries", sa.Column("replay_id", sa.UUID(), nullable=True))
    op.create_foreign_key(
        op.f("fk_deliveries_replay_id_replays"),
        "deliveries",
        "replays",
        ["replay_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.add_column("delivery_attempts", sa.Column("replay_id", sa.UUID(), nullable=True))
    op.create_foreign_key(
        op.f("fk_delivery_attempts_replay_id_replays"),
        "delivery_attempts",
        "replays",
        ["replay_id"],
        ["id"],
        ondelete="SET NULL",
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("fk_delivery_attempts_replay_id_replays"), "delivery_attempts", type_="foreignkey"
    )
    op.drop_column("delivery_attempts", "replay_id")
    op.drop_constraint(op.f("fk_deliveries_replay_id_replays"), "deliveries", type_="foreignkey")
    op.drop_column("deliveries", "replay_id")
    op.drop_table("replays")
