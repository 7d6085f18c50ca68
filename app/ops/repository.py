"""Audit-trail queries: keyset pages (newest first) that stay stable while rows arrive."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.braze.models import BrazeRequest
from app.delivery.models import Delivery, DeliveryAttempt
from app.errors import VoucherRelayError
from app.ops.models import Replay
from app.ops.params import BIGINT_MAX
from app.runs.models import Run
from app.webhooks.models import WebhookEvent

Row = TypeVar("Row", WebhookEvent, Delivery, Run)


class BadCursorError(VoucherRelayError):
    status_code = 422
    code = "validation_error"


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(str(last_id).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        last_id = int(base64.urlsafe_b64decode(padded.encode()).decode())
    except (ValueError, UnicodeDecodeError):
        last_id = 0
    if not 0 < last_id <= BIGINT_MAX:  # Postgres would refuse a larger one with a 500
        raise BadCursorError("cursor is not one this API returned")
    return last_id


async def page(
    session: AsyncSession, query: Select[Row], model: type[Row], *,
    limit: int, cursor: str | None,
) -> tuple[Sequence[Row], str | None]:  # fmt: skip
    """Rows older than the cursor, newest first; ids only grow, so new rows never shift a page."""
    if cursor is not None:
        query = query.where(model.id < decode_cursor(cursor))
    ordered = query.order_by(model.id.desc()).limit(limit + 1)
    rows = list((await session.execute(ordered)).scalars().all())
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1].id) if more and rows else None


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
    for column in ("distribution_id", "status", "braze_user_key", "trigger", "event_id", "run_id"):
        if filters.get(column) is not None:
            query = query.where(getattr(Delivery, column) == filters[column])
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
