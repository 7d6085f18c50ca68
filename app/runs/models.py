from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, TimestampMixin

# scheduled -> running -> done | failed; scheduled | running -> canceled;
# failed -> running when resumed (only after giving up on Voucherify being unavailable).
SCHEDULED = "scheduled"
RUNNING = "running"
DONE = "done"
CANCELED = "canceled"
FAILED = "failed"
STATUSES = (SCHEDULED, RUNNING, DONE, CANCELED, FAILED)


class Run(TimestampMixin, Base):
    """A manual distribution: one distribution sent to an audience once, after a delay."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    distribution_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("distributions.id"), nullable=False
    )
    distribution_version: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(10), nullable=False, server_default=SCHEDULED)
    # Exactly one of {"segment_id": ...}, {"customer_ids": [...]}, {"source_ids": [...]}.
    audience: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    # The campaign codes are published from (None: an `unset` run publishes nothing).
    campaign: Mapped[str | None] = mapped_column(String(255))
    delay_seconds: Mapped[int] = mapped_column(Integer, nullable=False)
    scheduled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    requested_by: Mapped[str] = mapped_column(String(100), nullable=False)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When every member had its delivery: from then on the run waits for them to settle.
    paged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    canceled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    canceled_by: Mapped[str | None] = mapped_column(String(100))
    # The last resume (POST /runs/{id}/resume) and how many there were: the ops API's audit.
    resumed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resumed_by: Mapped[str | None] = mapped_column(String(100))
    resumes: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    audience_size: Mapped[int | None] = mapped_column(Integer)
    processed: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    # Where paging stands, committed with each page's deliveries (a crashed run resumes here).
    checkpoint: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    leased_by: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)
    # Voucherify unavailable this many times in a row while paging (0 again after a page is
    # stored); past RUN_MAX_FAILURES the run fails. On a failed run, non-zero means it gave up
    # on Voucherify being unavailable, and it can be resumed.
    failures: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    # While it waits out Voucherify being unavailable: when the next try is due.
    next_try_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The counts when the run finished: they outlive the deliveries (RETENTION_DAYS).
    counts: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # Canceled, and some of its deliveries still wait or are on their way: the claims skip them
    # while batches withdraw them (app/delivery/store/withdrawal.py, which counts them in
    # `withdrawn` and clears the mark when none is left).
    withdrawing: Mapped[bool] = mapped_column(nullable=False, server_default=text("false"))
    withdrawn: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")

    __table_args__ = (
        Index(
            "ix_runs_due",
            "scheduled_at",
            postgresql_where=text("status IN ('scheduled', 'running')"),
        ),
        Index("ix_runs_distribution_id", "distribution_id"),
        # The claims read the runs being withdrawn once per statement (hold.NOT_STOPPED).
        Index("ix_runs_withdrawing", "id", postgresql_where=text("withdrawing")),
    )
