"""runs

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 13:05:50.079067
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("distribution_id", sa.UUID(), nullable=False),
        sa.Column("distribution_version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=10), server_default="scheduled", nullable=False),
        sa.Column("audience", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("campaign", sa.String(length=255), nullable=True),
        sa.Column("delay_seconds", sa.Integer(), nullable=False),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requested_by", sa.String(length=100), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("canceled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("canceled_by", sa.String(length=100), nullable=True),
        sa.Column("audience_size", sa.Integer(), nullable=True),
        sa.Column("processed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("checkpoint", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("leased_by", sa.String(length=100), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("counts", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["distribution_id"],
            ["distributions.id"],
            name=op.f("fk_runs_distribution_id_distributions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    op.create_index("ix_runs_distribution_id", "runs", ["distribution_id"], unique=False)
    op.create_index(
        "ix_runs_due",
        "runs",
        ["scheduled_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('scheduled', 'running')"),
    )
    op.add_column("deliveries", sa.Column("run_id", sa.BigInteger(), nullable=True))
    op.add_column("deliveries", sa.Column("run_member", sa.String(length=255), nullable=True))
    op.add_column(
        "deliveries", sa.Column("context", postgresql.JSONB(astext_type=sa.Text()), nullable=True)
    )
    op.create_index(
        "uq_deliveries_run_member",
        "deliveries",
        ["run_id", "run_member"],
        unique=True,
        postgresql_where=sa.text("run_id IS NOT NULL"),
    )
    op.create_index(
        "ix_deliveries_run_open",
        "deliveries",
        ["run_id"],
        unique=False,
        postgresql_where=sa.text("run_id IS NOT NULL AND status IN ('pending', 'in_flight')"),
    )
    op.create_foreign_key(
        op.f("fk_deliveries_run_id_runs"),
        "deliveries",
        "runs",
        ["run_id"],
        ["id"],
        ondelete="SET NULL",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("fk_deliveries_run_id_runs"), "deliveries", type_="foreignkey")
    op.drop_index("ix_deliveries_run_open", table_name="deliveries")
    op.drop_index(
        "uq_deliveries_run_member",
        table_name="deliveries",
        postgresql_where=sa.text("run_id IS NOT NULL"),
    )
    op.drop_column("deliveries", "context")
    op.drop_column("deliveries", "run_member")
    op.drop_column("deliveries", "run_id")
    op.drop_index(
        "ix_runs_due",
        table_name="runs",
        postgresql_where=sa.text("status IN ('scheduled', 'running')"),
    )
    op.drop_index("ix_runs_distribution_id", table_name="runs")
    op.drop_table("runs")
