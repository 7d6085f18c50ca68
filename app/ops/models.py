from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Index, Integer, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base

# Replay statuses: queued -> running -> done | canceled | failed (one-delivery and inline
# replays are done at once; failed: one batch failed REPLAY_MAX_BATCH_ATTEMPTS times).
QUEUED = "queued"
RUNNING = "running"
DONE = "done"
CANCELED = "canceled"
FAILED = "failed"
REPLAY_STATUSES = (QUEUED, RUNNING, DONE, CANCELED, FAILED)


class Replay(Base):
    """An operator's request to send something again: who asked, when, what, and how much."""

    __tablename__ = "replays"

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    # delivery (one delivery), event, distribution (a time window), bulk (a filter).
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    # What the attempts it causes count as: `bulk` for bulk replays, `manual` for the others.
    trigger: Mapped[str] = mapped_column(String(10), nullable=False, server_default="manual")
    requested_by: Mapped[str] = mapped_column(String(100), nullable=False)
    requested_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    filter: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    force: Mapped[bool] = mapped_column(nullable=False, server_default=text("false"))
    status: Mapped[str] = mapped_column(String(20), nullable=False, server_default="done")
    # Counts: rows looked at, deliveries queued, and the rest by reason ({"no_consent": 3}).
    # Background replays: how many rows the request covered when asked (progress: matched/total).
    total: Mapped[int | None] = mapped_column(Integer)
    matched: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    queued: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    skipped: Mapped[dict[str, int]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    # Forced replays: attribute_state entries set back to the replayed delivery's event time,
    # so that its value wins over `stale` (app/delivery/store/state_reset.py).
    state_reset: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    # Background replays: the rows are those with ids up to `last_id` (fixed when asked, so
    # rows that arrive later are not swept in), worked through in id order; `checkpoint` is
    # the last id done, committed with each batch, so a replay resumes where a crash left it.
    last_id: Mapped[int | None] = mapped_column(BigInteger)
    checkpoint: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    # Failed tries of the batch after `checkpoint` (0 again once a batch commits).
    batch_attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    leased_by: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    canceled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    canceled_by: Mapped[str | None] = mapped_column(String(100))
    # Canceled, and some of what it queued still waits or is on its way: the claims skip those
    # deliveries while batches withdraw them (app/delivery/store/withdrawal.py, which counts
    # them in `withdrawn` and clears the mark when none is left).
    withdrawing: Mapped[bool] = mapped_column(nullable=False, server_default=text("false"))
    withdrawn: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")

    __table_args__ = (
        # The replay lane's claim: only work not finished.
        Index(
            "ix_replays_unfinished",
            "requested_at",
            postgresql_where=text("status IN ('queued', 'running')"),
        ),
        # The list endpoint: newest first.
        Index("ix_replays_requested_at_id", "requested_at", "id"),
        # The claims read the replays being withdrawn once per statement (hold.NOT_STOPPED).
        Index("ix_replays_withdrawing", "id", postgresql_where=text("withdrawing")),
    )
