from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, TimestampMixin

# Delivery statuses: pending → in_flight → delivered | skipped | failed | dead.
PENDING = "pending"
IN_FLIGHT = "in_flight"
DELIVERED = "delivered"
SKIPPED = "skipped"
FAILED = "failed"
DEAD = "dead"
STATUSES = (PENDING, IN_FLIGHT, DELIVERED, SKIPPED, FAILED, DEAD)

# What created the delivery.
TRIGGERS = ("webhook", "run", "manual", "bulk")


class Delivery(TimestampMixin, Base):
    """One (distribution, event or run member) pair on its way to Braze: the outbox row."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    distribution_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("distributions.id"), nullable=False
    )
    distribution_version: Mapped[int] = mapped_column(Integer, nullable=False)
    event_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("webhook_events.id", ondelete="SET NULL")
    )
    trigger: Mapped[str] = mapped_column(String(10), nullable=False, server_default="webhook")
    # `<identity type>:<value>`: the key that coalescing and attribute_state group by. Text:
    # the mapping bounds identifiers (987 bytes, Braze's limit) and skips longer ones with a
    # reason; a column limit would fail the whole insert instead (and the webhook with it).
    braze_user_key: Mapped[str | None] = mapped_column(Text)
    # The resolved Braze attributes object, or the reason nothing is sent.
    attributes: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    skip_reason: Mapped[str | None] = mapped_column(String(50))
    # When the triggering event happened: newer events win, older ones are stale.
    event_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(10), nullable=False, server_default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    leased_by: Mapped[str | None] = mapped_column(String(100))
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A replay with force: send even if Braze already has this value.
    force: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    # The replay that queued this delivery again; its attempts from then on carry it.
    replay_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("replays.id", ondelete="SET NULL")
    )
    # A run's delivery: the run, the member it is for (customer id or source_id as the audience
    # named it), and the envelope the run made for that customer (there is no webhook event).
    run_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("runs.id", ondelete="SET NULL")
    )
    # Text; bounded by `runs.executor.member_key` (it is in a unique index).
    run_member: Mapped[str | None] = mapped_column(Text)
    context: Mapped[dict[str, Any] | None] = mapped_column(JSONB)

    __table_args__ = (
        # The queue's probes, one partial index each (app/delivery/store/claims.py says why no
        # predicate here may be implied by another probe's WHERE clause).
        Index(
            "ix_deliveries_waiting_by_user",
            "braze_user_key",
            postgresql_where=text(
                "status IN ('pending', 'in_flight') AND attributes IS NOT NULL"
                " AND braze_user_key IS NOT NULL"
            ),
        ),
        Index(
            "ix_deliveries_due_to_send",
            "next_attempt_at",
            "id",
            postgresql_where=text("status = 'pending' AND attributes IS NOT NULL"),
        ),
        Index(
            "ix_deliveries_due_to_publish",
            "next_attempt_at",
            postgresql_where=text("status = 'pending' AND attributes IS NULL"),
        ),
        Index(
            "ix_deliveries_leased",
            "lease_expires_at",
            postgresql_where=text("status = 'in_flight' AND lease_expires_at IS NOT NULL"),
        ),
        # A distribution's waiting rows, for its queue changes (app/delivery/store/queue_change.py);
        # `distribution_id IS NOT NULL` is implied by no claim.
        Index(
            "ix_deliveries_waiting_by_distribution",
            "distribution_id",
            "next_attempt_at",
            "id",
            postgresql_where=text(
                "distribution_id IS NOT NULL AND status IN ('pending', 'in_flight')"
            ),
        ),
        Index("ix_deliveries_distribution_id_created_at", "distribution_id", "created_at"),
        Index("ix_deliveries_event_id", "event_id"),
        # The ops list's filters, in its page order (migrations/versions/0016).
        Index("ix_deliveries_distribution_id_id", "distribution_id", "id"),
        Index(
            "ix_deliveries_settled_status_id",
            "status",
            "id",
            postgresql_where=text("status NOT IN ('pending', 'in_flight')"),
        ),
        Index("ix_deliveries_braze_user_key_id", "braze_user_key", "id"),
        Index("ix_deliveries_trigger_id", "trigger", "id"),
        Index(
            "ix_deliveries_run_id_id", "run_id", "id", postgresql_where=text("run_id IS NOT NULL")
        ),
        Index("ix_deliveries_created_at", "created_at"),
        # Retention deleting a replay sets this to NULL: find the rows without a scan. Partial:
        # few deliveries are ever replayed, so the hot path's inserts rarely touch it.
        Index(
            "ix_deliveries_replay_id", "replay_id", postgresql_where=text("replay_id IS NOT NULL")
        ),
        # The console's "failed" and "dead" filters, newest first (few rows: a small index).
        Index("ix_deliveries_failed", "id", postgresql_where=text("status IN ('failed', 'dead')")),
        # One delivery per run member: a resumed run never creates a second one.
        Index(
            "uq_deliveries_run_member",
            "run_id",
            "run_member",
            unique=True,
            postgresql_where=text("run_id IS NOT NULL"),
        ),
        # A canceled replay's or run's waiting rows, for its withdrawal's batches
        # (app/delivery/store/withdrawal.py); a run is also done when none of its deliveries is
        # on its way any more. `replay_id IS NOT NULL` / `run_id IS NOT NULL`: implied by no claim.
        Index(
            "ix_deliveries_waiting_by_replay",
            "replay_id",
            "id",
            postgresql_where=text("replay_id IS NOT NULL AND status IN ('pending', 'in_flight')"),
        ),
        Index(
            "ix_deliveries_waiting_by_run",
            "run_id",
            "id",
            postgresql_where=text("run_id IS NOT NULL AND status IN ('pending', 'in_flight')"),
        ),
    )


class DeliveryAttempt(Base):
    """What happened to one delivery on one try: the audit trail of retries and replays."""

    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("deliveries.id", ondelete="CASCADE"), nullable=False
    )
    braze_request_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("braze_requests.id", ondelete="SET NULL")
    )
    attempted_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    # delivered, failed, retry, dead, rate_limited, blocked, skipped
    outcome: Mapped[str] = mapped_column(String(20), nullable=False)
    message: Mapped[str | None] = mapped_column(Text)
    # Attributes left out of the request: {"unchanged": [...], "stale": [...]}.
    omitted: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # Set when a replay caused this attempt (and then `trigger` says manual or bulk).
    replay_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("replays.id", ondelete="SET NULL")
    )

    __table_args__ = (
        Index("ix_delivery_attempts_delivery_id", "delivery_id"),
        Index("ix_delivery_attempts_braze_request_id", "braze_request_id"),
        # The console's overview reads the newest attempts (per minute, failures, data points).
        Index("ix_delivery_attempts_attempted_at", "attempted_at"),
        Index(
            "ix_delivery_attempts_replay_id",
            "replay_id",
            postgresql_where=text("replay_id IS NOT NULL"),
        ),
    )


class AttributeState(Base):
    """The last value delivered per (Braze user, attribute) and the time of its event.

    Braze bills every attribute sent: an unchanged value is not sent again. An event older than
    the one that set the current value must not overwrite it.
    """

    __tablename__ = "attribute_state"

    braze_user_key: Mapped[str] = mapped_column(Text, primary_key=True)
    attribute: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[Any] = mapped_column(JSONB, nullable=True)
    event_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivery_id: Mapped[int | None] = mapped_column(BigInteger)
    # A later send of this attribute failed with an unknown outcome (timeout, 5xx): Braze may
    # hold that newer value, so `value` cannot call anything unchanged until a send succeeds.
    uncertain: Mapped[bool] = mapped_column(nullable=False, server_default=text("false"))
    # The newest event among those sends: Braze may hold its value, so older events are stale.
    doubt_event_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When Braze last accepted `value`: trusted for ATTRIBUTE_TRUST_DAYS, then sent again.
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
