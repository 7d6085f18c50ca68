"""Test data for replays: stored webhooks built from the sample events, and distributions."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.delivery.models import Delivery
from app.webhooks.models import WebhookEvent
from tests.conftest import WRITER
from tests.factories import distribution_body, sample

T0 = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


def segment_entered(n: int, *, user: str | None = None) -> dict[str, Any]:
    body = sample("customer.segment.entered")
    body["event"]["id"] = f"evt_replay_{n}"
    body["data"]["customer"]["source_id"] = user or f"user-{n}"
    return body


async def stored_event(
    session: AsyncSession, n: int, *, received_at: datetime | None = None, user: str | None = None
) -> WebhookEvent:
    body = segment_entered(n, user=user)
    row = WebhookEvent(
        voucherify_event_id=body["event"]["id"], source_id=body["source"]["id"],
        source_object="distribution", event_type=body["event"]["type"],
        signature_result="valid_raw", outcome="matched", raw_body=json.dumps(body).encode(),
        received_at=received_at or T0 + timedelta(minutes=n),
        customer_source_id=body["data"]["customer"]["source_id"],
    )  # fmt: skip
    session.add(row)
    await session.flush()
    return row


async def create_distribution(client: httpx.AsyncClient, **overrides: Any) -> uuid.UUID:
    body = distribution_body(name=f"d-{uuid.uuid4().hex[:8]}", **overrides)
    response = await client.post("/api/v1/distributions", json=body, headers=WRITER)
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"])


async def settled_delivery(
    session: AsyncSession, event: WebhookEvent, distribution_id: uuid.UUID, **fields: Any
) -> Delivery:
    """A delivery intake stored for the event, settled as `status` (dead by default)."""
    values: dict[str, Any] = {
        "distribution_id": distribution_id, "distribution_version": 1, "event_id": event.id,
        "braze_user_key": f"external_id:{event.customer_source_id}", "status": "dead",
        "attempts": 12, "attributes": {"external_id": event.customer_source_id, "old": "x"},
        "event_time": event.received_at,
    }  # fmt: skip
    row = Delivery(**{**values, **fields})
    session.add(row)
    await session.flush()
    return row
