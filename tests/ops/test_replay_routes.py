from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.delivery.models import Delivery, DeliveryAttempt
from app.ops.models import Replay
from tests.conftest import READER, WRITER
from tests.factories import distribution_body
from tests.ops.test_audit_routes import delivery, distribution


async def dead(session: AsyncSession, **fields: Any) -> Delivery:
    d = await distribution(session)
    values: dict[str, Any] = {
        "distribution_id": d.id, "status": "dead", "attempts": 12,
        "attributes": {"external_id": "user-1", "code": "A"},
    }  # fmt: skip
    return await delivery(session, **{**values, **fields})


async def test_replaying_a_dead_delivery_queues_it_and_records_who_asked(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    row = await dead(session)
    response = await client.post(
        f"/api/v1/deliveries/{row.id}/replay", json={"force": True}, headers=WRITER
    )
    assert response.status_code == 202, response.text
    replay_id = uuid.UUID(response.json()["replay_id"])

    await session.refresh(row)
    assert (row.status, row.force, row.replay_id) == ("pending", True, replay_id)
    replay = await session.get(Replay, replay_id)
    assert replay is not None
    assert (replay.kind, replay.requested_by, replay.filter, replay.queued) == (
        "delivery",
        "ops-team",
        {"delivery_id": row.id},
        1,
    )
    attempt = (await session.execute(select(DeliveryAttempt))).scalar_one()
    assert (attempt.outcome, attempt.replay_id) == ("replay_queued", replay_id)


async def test_a_one_delivery_replay_is_done_with_its_start_and_finish_times(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    row = await dead(session)
    response = await client.post(f"/api/v1/deliveries/{row.id}/replay", headers=WRITER)
    assert response.status_code == 202, response.text
    shown = await client.get(f"/api/v1/replays/{response.json()['replay_id']}", headers=READER)
    replay = shown.json()
    assert replay["status"] == "done"
    assert replay["started_at"] is not None and replay["finished_at"] is not None
    assert replay["requested_at"] <= replay["started_at"] <= replay["finished_at"]


async def test_a_replay_without_body_does_not_force(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    row = await dead(session)
    assert (
        await client.post(f"/api/v1/deliveries/{row.id}/replay", headers=WRITER)
    ).status_code == 202
    await session.refresh(row)
    assert row.force is False


async def test_read_only_tokens_cannot_replay(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    row = await dead(session)
    response = await client.post(f"/api/v1/deliveries/{row.id}/replay", headers=READER)
    assert response.status_code == 403


async def test_queued_or_empty_deliveries_cannot_be_replayed(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    queued = await dead(session, status="pending")
    response = await client.post(f"/api/v1/deliveries/{queued.id}/replay", headers=WRITER)
    assert response.status_code == 409 and "queued already" in response.json()["error"]["message"]
    empty = await dead(session, status="skipped", attributes=None, skip_reason="no_consent")
    response = await client.post(f"/api/v1/deliveries/{empty.id}/replay", headers=WRITER)
    assert response.status_code == 409 and "no_consent" in response.json()["error"]["message"]
    assert (
        await client.post("/api/v1/deliveries/999999/replay", headers=WRITER)
    ).status_code == 404


async def test_a_nul_character_in_a_filter_or_an_audience_is_a_422_not_a_500(
    committing_client: httpx.AsyncClient,
) -> None:
    body = distribution_body(code_source={"type": "publish", "campaign": "Welcome"})
    created = await committing_client.post("/api/v1/distributions", json=body, headers=WRITER)
    runs = f"/api/v1/distributions/{created.json()['id']}/runs"
    for url, body in [
        ("/api/v1/replays/plan", {"filter": {"braze_user_key": "external_id:a\x00"}}),
        ("/api/v1/replays", {"filter": {"event_type": "customer.\x00"}}),
        (runs, {"audience": {"segment_id": "seg_\x00"}}),
        ("/api/v1/distributions", distribution_body(name="welcome\x00")),
    ]:
        answer = await committing_client.post(url, json=body, headers=WRITER)
        assert answer.status_code == 422, (url, answer.text)
        assert answer.json()["error"]["code"] == "invalid_text"
        assert "NUL" in answer.json()["error"]["message"]
