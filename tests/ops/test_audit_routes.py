from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.braze.models import BrazeRequest
from app.delivery.models import Delivery, DeliveryAttempt
from app.distributions.models import Distribution
from app.webhooks.models import WebhookEvent
from tests.conftest import READER

T0 = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


async def event(session: AsyncSession, n: int, **fields: Any) -> WebhookEvent:
    body = {"event": {"id": f"ev{n}", "type": fields.get("event_type", "customer.order.paid")}}
    row = WebhookEvent(
        voucherify_event_id=f"ev{n}", source_id="distr_1", source_object="distribution",
        event_type="customer.order.paid", signature_result="valid_raw", outcome="matched",
        raw_body=json.dumps(body).encode(), received_at=T0 + timedelta(minutes=n),
        customer_id=f"cust_{n}", customer_source_id=f"user-{n}",
    )  # fmt: skip
    for key, value in fields.items():
        setattr(row, key, value)
    session.add(row)
    await session.flush()
    return row


async def distribution(session: AsyncSession) -> Distribution:
    row = Distribution(
        name=f"d-{uuid.uuid4().hex[:6]}", triggers=["customer.order.paid"], code_source={},
        identity={}, mapping=[],
    )  # fmt: skip
    session.add(row)
    await session.flush()
    return row


async def delivery(session: AsyncSession, **fields: Any) -> Delivery:
    row = Delivery(**{"distribution_version": 1, "braze_user_key": "external_id:user-1", **fields})
    session.add(row)
    await session.flush()
    return row


async def get(client: httpx.AsyncClient, url: str, **params: Any) -> Any:
    response = await client.get(url, params=params, headers=READER)
    assert response.status_code == 200, response.text
    return response.json()


async def test_events_page_newest_first_and_stay_stable_while_rows_arrive(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    ids = [(await event(session, n)).id for n in range(5)]
    first = await get(client, "/api/v1/events", limit=2)
    assert [e["id"] for e in first["items"]] == [ids[4], ids[3]]
    for n in (10, 11):  # new webhooks arrive between pages
        await event(session, n)
    second = await get(client, "/api/v1/events", limit=2, cursor=first["next_cursor"])
    assert [e["id"] for e in second["items"]] == [ids[2], ids[1]]
    third = await get(client, "/api/v1/events", limit=2, cursor=second["next_cursor"])
    assert [e["id"] for e in third["items"]] == [ids[0]]
    assert third["next_cursor"] is None


async def test_events_filter_by_type_outcome_customer_and_window(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await event(session, 1)
    paid = await event(session, 2, event_type="customer.order.paid", outcome="unmatched")
    entered = await event(session, 3, event_type="customer.segment.entered")

    async def ids(**params: Any) -> list[int]:
        return [e["id"] for e in (await get(client, "/api/v1/events", **params))["items"]]

    assert await ids(type="customer.segment.entered") == [entered.id]
    assert await ids(outcome="unmatched") == [paid.id]
    assert await ids(customer="user-3") == [entered.id]
    assert await ids(customer="cust_2") == [paid.id]
    window = {
        "since": (T0 + timedelta(minutes=2)).isoformat(),
        "until": (T0 + timedelta(minutes=3)).isoformat(),
    }
    assert await ids(**window) == [paid.id]


async def test_an_event_shows_its_body_and_its_deliveries(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    stored = await event(session, 1)
    d = await distribution(session)
    made = await delivery(session, distribution_id=d.id, event_id=stored.id)
    detail = await get(client, f"/api/v1/events/{stored.id}")
    assert detail["envelope"] == {"event": {"id": "ev1", "type": "customer.order.paid"}}
    assert [x["id"] for x in detail["deliveries"]] == [made.id]


async def test_deliveries_filter_and_show_every_attempt_with_its_braze_request(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    d = await distribution(session)
    failed = await delivery(session, distribution_id=d.id, status="failed", attempts=2,
                            attributes={"external_id": "user-1", "code": "A"})  # fmt: skip
    await delivery(
        session, distribution_id=d.id, status="delivered", braze_user_key="external_id:user-2"
    )
    request = BrazeRequest(started_at=T0, duration_ms=12.5, status_code=503, kind="retry",
                           objects=1, request_bytes=40, response_body="busy")  # fmt: skip
    session.add(request)
    await session.flush()
    session.add(
        DeliveryAttempt(
            delivery_id=failed.id, braze_request_id=request.id, outcome="retry", message="busy"
        )
    )
    session.add(DeliveryAttempt(delivery_id=failed.id, outcome="failed", message="Invalid value"))
    await session.flush()

    listed = await get(client, "/api/v1/deliveries", status="failed", distribution_id=str(d.id))
    assert [x["id"] for x in listed["items"]] == [failed.id]
    by_user = await get(client, "/api/v1/deliveries", braze_user_key="external_id:user-2")
    assert len(by_user["items"]) == 1 and by_user["items"][0]["status"] == "delivered"

    detail = await get(client, f"/api/v1/deliveries/{failed.id}")
    assert detail["attributes"] == {"external_id": "user-1", "code": "A"}
    assert [a["outcome"] for a in detail["attempts_log"]] == ["retry", "failed"]
    assert detail["attempts_log"][0]["braze_request"]["status_code"] == 503
    assert detail["attempts_log"][1]["braze_request"] is None

    carried = await get(client, f"/api/v1/braze-requests/{request.id}")
    assert carried["deliveries"] == [failed.id] and carried["response_body"] == "busy"


async def test_bad_queries_get_clear_errors(client: httpx.AsyncClient) -> None:
    bad_cursor = await client.get("/api/v1/events", params={"cursor": "%%%"}, headers=READER)
    assert bad_cursor.status_code == 422 and "cursor" in bad_cursor.json()["error"]["message"]
    window = {"since": "2026-03-10T10:00:00Z", "until": "2026-03-10T09:00:00Z"}
    backwards = await client.get("/api/v1/deliveries", params=window, headers=READER)
    assert backwards.status_code == 422 and "since must be before until" in backwards.text
    bad_status = await client.get("/api/v1/deliveries", params={"status": "lost"}, headers=READER)
    assert bad_status.status_code == 422
    for url in (
        "/api/v1/events/999999",
        "/api/v1/deliveries/999999",
        "/api/v1/braze-requests/999999",
    ):
        assert (await client.get(url, headers=READER)).status_code == 404


async def test_a_window_without_a_zone_is_utc(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await event(session, 1)  # received T0 + 1 min
    window = {"since": "2026-03-10T09:00:00", "until": "2026-03-10T09:02:00Z"}
    answer = await client.get("/api/v1/events", params=window, headers=READER)
    assert answer.status_code == 200 and [
        e["voucherify_event_id"] for e in answer.json()["items"]
    ] == ["ev1"]


async def test_ids_beyond_postgres_bigint_get_422_not_500(client: httpx.AsyncClient) -> None:
    huge = str(2**63)
    for url in ("/api/v1/events/" + huge, "/api/v1/deliveries/" + huge, "/api/v1/braze-requests/0"):
        assert (await client.get(url, headers=READER)).status_code == 422
    cursor = base64.urlsafe_b64encode(huge.encode()).decode()
    for params in ({"event_id": huge}, {"cursor": cursor}):
        answer = await client.get("/api/v1/deliveries", params=params, headers=READER)
        assert answer.status_code == 422 and answer.json()["error"]["code"] == "validation_error"


async def test_the_audit_trail_needs_a_token(client: httpx.AsyncClient) -> None:
    for url in ("/api/v1/events", "/api/v1/deliveries", "/api/v1/braze-requests/1"):
        assert (await client.get(url)).status_code == 401
