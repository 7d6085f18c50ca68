from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, TimestampMixin


class Distribution(TimestampMixin, Base):
    """One rule: a trigger, a code source, a Braze identity, consent, and the attribute mapping."""

    __tablename__ = "distributions"

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    triggers: Mapped[list[str]] = mapped_column(ARRAY(String(100)), nullable=False)
    filters: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    code_source: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    identity: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    consent: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    mapping: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False)
    action: Mapped[str] = mapped_column(String(10), nullable=False, server_default="set")
    update_existing_only: Mapped[bool] = mapped_column(
        Boolean, nullable=False, server_default=text("false")
    )
    status: Mapped[str] = mapped_column(String(10), nullable=False, server_default="active")
    version: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A change of the whole queue still being carried out in batches (hold, release or skip;
    # app/delivery/store/queue_change.py) and the rows it changed so far.
    queue_change: Mapped[str | None] = mapped_column(String(10))
    queue_changed: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")

    __table_args__ = (
        # Names are unique among live distributions; a deleted one frees its name.
        Index(
            "uq_distributions_live_name",
            "name",
            unique=True,
            postgresql_where=text("deleted_at IS NULL"),
        ),
        # Intake looks up active distributions by trigger on every webhook.
        Index("ix_distributions_triggers", "triggers", postgresql_using="gin"),
    )
