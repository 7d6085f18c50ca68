from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    Identity,
    Integer,
    LargeBinary,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.schema import Index, UniqueConstraint

from app.db.base import Base


class WebhookEvent(Base):
    """The inbox: every accepted Voucherify webhook, stored before it is acknowledged."""

    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    voucherify_event_id: Mapped[str] = mapped_column(String(100), nullable=False)
    # `source.id`: the project webhook (`wh_…`) or distribution (`distr_…`) that sent it.
    source_id: Mapped[str] = mapped_column(String(100), nullable=False)
    source_object: Mapped[str] = mapped_column(String(20), nullable=False)
    # Ids in the unique key above are bounded by the envelope check (longer: 400, before any
    # insert); the columns below are in no index and take any length the body limit lets in.
    send_out_id: Mapped[str | None] = mapped_column(Text)
    project_id: Mapped[str | None] = mapped_column(Text)
    event_type: Mapped[str] = mapped_column(String(100), nullable=False)
    customer_id: Mapped[str | None] = mapped_column(Text)
    customer_source_id: Mapped[str | None] = mapped_column(Text)
    # The event's time as voucher-relay orders by it: the envelope's, unless that was too far
    # ahead of the time received (EVENT_TIME_MAX_AHEAD_SECONDS); the raw body keeps the claim.
    event_created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    # Exactly the bytes received (signatures are checked over them), stored once: the
    # envelope's fields are the columns above, and readers parse this for the whole body.
    raw_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    signature_result: Mapped[str] = mapped_column(String(20), nullable=False)
    outcome: Mapped[str] = mapped_column(String(20), nullable=False)
    deliveries_created: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")

    __table_args__ = (
        UniqueConstraint("voucherify_event_id", "source_id"),
        Index("ix_webhook_events_received_at", "received_at"),
        Index("ix_webhook_events_event_type_received_at", "event_type", "received_at"),
        # The console's customer lookup. Hash: equality is all it needs, and a hash index takes
        # values of any length (a btree entry past ~2.7 kB would fail the webhook's insert).
        Index(
            "ix_webhook_events_customer_source_id", "customer_source_id", postgresql_using="hash"
        ),
        Index("ix_webhook_events_customer_id", "customer_id", postgresql_using="hash"),
        Index("ix_webhook_events_failed", "id", postgresql_where=text("outcome = 'failed'")),
        # The ops list's filters, in its page order (migrations/versions/0016). The customer
        # filters use the hash indexes above: a btree over these unbounded values would fail the
        # insert of a webhook whose id passes ~2.7 kB.
        Index("ix_webhook_events_event_type_id", "event_type", "id"),
        Index("ix_webhook_events_outcome_id", "outcome", "id"),
    )
