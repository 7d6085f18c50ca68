"""The ops API's changes to `deliveries` (SQLAlchemy, in the request's session): a replay
queues a delivery again with the whole retry schedule, and a requeue may first create the
delivery or store what the distribution's current version maps."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.nul import without_nul
from app.delivery.models import PENDING, SKIPPED, Delivery, DeliveryAttempt


def new_delivery(
    session: AsyncSession, *, distribution_id: uuid.UUID, event_id: int, trigger: str,
    event_time: datetime | None,
) -> Delivery:  # fmt: skip
    """A delivery of an event that had none for this distribution; the caller fills it in."""
    delivery = Delivery(
        distribution_id=distribution_id, event_id=event_id, trigger=trigger,
        event_time=event_time, attempts=0,
    )  # fmt: skip
    session.add(delivery)
    return delivery


def store_mapped(
    delivery: Delivery, *, version: int, row: dict[str, Any], replay_id: uuid.UUID
) -> None:
    """What the distribution's `version` maps for the event (`row` as intake plans it); a row the
    mapping skips is stored skipped, as intake stores it."""
    delivery.distribution_version = version
    delivery.braze_user_key = row["braze_user_key"]
    delivery.attributes = row["attributes"]
    delivery.skip_reason = row["skip_reason"]
    delivery.last_error = without_nul(row["last_error"])
    if row["status"] == SKIPPED:
        delivery.status = SKIPPED
        delivery.replay_id = replay_id


def queue_again(
    delivery: Delivery, *, replay_id: uuid.UUID, force: bool, now: datetime | None = None,
    clear_skip: bool = False, drop_lease: bool = True,
) -> None:  # fmt: skip
    """Pending now, with the whole retry schedule again (as every replay does); `drop_lease`
    also ends a worker's lease on it (a requeue does, a one-delivery replay leaves it)."""
    delivery.status = PENDING
    delivery.next_attempt_at = now or datetime.now(UTC)
    delivery.attempts = 0
    delivery.force = force
    delivery.replay_id = replay_id
    if drop_lease:
        delivery.lease_expires_at = None
        delivery.leased_by = None
    if clear_skip:
        delivery.skip_reason = None


def log_replay(
    session: AsyncSession, *, delivery_id: int, outcome: str, replay_id: uuid.UUID, message: str
) -> None:
    """The delivery's log says a replay queued it (`replay_queued`) or looked at it and sent
    nothing (`replay_skipped`), and why."""
    session.add(
        DeliveryAttempt(
            delivery_id=delivery_id, outcome=outcome, replay_id=replay_id, message=message
        )
    )
