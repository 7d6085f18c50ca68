"""Audit-trail queries of the ops API; their pages come from app.api.pagination."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.braze.models import BrazeRequest
from app.delivery.models import STATUSES, Delivery, DeliveryAttempt
from app.ops.models import Replay
from app.webhooks.models import WebhookEvent


def events_query(
    *, event_type: str | None, outcome: str | None, customer: str | None,
    since: datetime | None, until: datetime | None,
) -> Select[WebhookEvent]:  # fmt: skip
    query = select(WebhookEvent)
    if event_type:
        query = query.where(WebhookEvent.event_type == event_type)
    if outcome:
        query = query.where(WebhookEvent.outcome == outcome)
    if customer:
        query = query.where(
            or_(WebhookEvent.customer_id == customer, WebhookEvent.customer_source_id == customer)
        )
    if since:
        query = query.where(WebhookEvent.received_at >= since)
    if until:
        query = query.where(WebhookEvent.received_at < until)
    return query


def deliveries_query(filters: dict[str, Any]) -> Select[Delivery]:
    query = select(Delivery)
    for column in ("distribution_id", "braze_user_key", "trigger", "event_id", "run_id"):
        if filters.get(column) is not None:
            query = query.where(getattr(Delivery, column) == filters[column])
    if (status := filters.get("status")) is not None:
        # A literal (one of STATUSES, checked by the route): the plan then knows it and can use
        # the partial index of settled statuses (ix_deliveries_settled_status_id).
        assert status in STATUSES
        query = query.where(Delivery.status == literal(status, literal_execute=True))
    if filters.get("since"):
        query = query.where(Delivery.created_at >= filters["since"])
    if filters.get("until"):
        query = query.where(Delivery.created_at < filters["until"])
    return query


async def event_deliveries(session: AsyncSession, event_id: int) -> Sequence[Delivery]:
    query = select(Delivery).where(Delivery.event_id == event_id).order_by(Delivery.id)
    return (await session.execute(query)).scalars().all()


async def attempts_of(
    session: AsyncSession, delivery_id: int
) -> Sequence[tuple[DeliveryAttempt, BrazeRequest | None, str | None]]:
    """Each attempt with its Braze request and, when a replay caused it, the replay's trigger."""
    query = (
        select(DeliveryAttempt, BrazeRequest, Replay.trigger)
        .outerjoin(BrazeRequest, BrazeRequest.id == DeliveryAttempt.braze_request_id)
        .outerjoin(Replay, Replay.id == DeliveryAttempt.replay_id)
        .where(DeliveryAttempt.delivery_id == delivery_id)
        .order_by(DeliveryAttempt.id)
    )
    return [tuple(row) for row in (await session.execute(query)).all()]  # type: ignore[misc]


async def request_deliveries(session: AsyncSession, request_id: int) -> list[int]:
    query = (
        select(DeliveryAttempt.delivery_id)
        .where(DeliveryAttempt.braze_request_id == request_id)
        .distinct()
        .order_by(DeliveryAttempt.delivery_id)
    )
    return list((await session.execute(query)).scalars().all())
