from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Float, Identity, Index, Integer, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base


class BrazeRequest(Base):
    """One /users/track call: when, how long, what Braze said, how many objects it carried."""

    __tablename__ = "braze_requests"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    duration_ms: Mapped[float] = mapped_column(Float, nullable=False)
    status_code: Mapped[int | None] = mapped_column(Integer)
    # The classification: delivered, split, rejected, rate_limited, retry, config_error.
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    objects: Mapped[int] = mapped_column(Integer, nullable=False)
    request_bytes: Mapped[int] = mapped_column(Integer, nullable=False)
    # Braze's answer, truncated; the key is never in it (the client scrubs it).
    response_body: Mapped[str | None] = mapped_column(Text)
    response_headers: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(100))

    __table_args__ = (Index("ix_braze_requests_started_at", "started_at"),)


class BrazeGate(Base):
    """Shared by every worker of a Braze workspace: the request budget (a token bucket), a
    pause after 429 or a low X-RateLimit-Remaining, and a block after a configuration error."""

    __tablename__ = "braze_gate"

    workspace: Mapped[str] = mapped_column(String(300), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float, nullable=False)
    refilled_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    paused_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    blocked_reason: Mapped[str | None] = mapped_column(Text)
    blocked_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_probe_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A Braze outage seen by any worker: since when requests fail (5xx, timeouts, connection
    # errors) with no success in between, and how many. The first success after it makes the
    # deliveries waiting on a retry due at once (instead of up to hours later).
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failed_requests: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
