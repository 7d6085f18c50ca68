"""The runs API: what it accepts, what it refuses and why, who may do what."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import READER, WRITER
from tests.factories import distribution_body

SEGMENT = {"segment_id": "seg_1"}


async def _distribution(client: httpx.AsyncClient, **overrides: Any) -> str:
    body = distribution_body(
        **{"code_source": {"type": "publish", "campaign": "Welcome"}, **overrides}
    )
    answer = await client.post("/api/v1/distributions", json=body, headers=WRITER)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


async def _run(
    client: httpx.AsyncClient, distribution_id: str, body: dict[str, Any],
    headers: dict[str, str] = WRITER,
) -> httpx.Response:  # fmt: skip
    return await client.post(
        f"/api/v1/distributions/{distribution_id}/runs", json=body, headers=headers
    )


def _messages(answer: httpx.Response) -> str:
    error = answer.json()["error"]
    return " ".join([error["message"], *(d["message"] for d in error.get("details") or [])])


async def test_a_run_waits_ten_minutes_by_default(client: httpx.AsyncClient) -> None:
    distribution_id = await _distribution(client)
    asked = datetime.now(UTC)
    answer = await _run(client, distribution_id, {"audience": SEGMENT})
    answered = datetime.now(UTC)
    assert answer.status_code == 202
    run = answer.json()
    assert run["status"] == "scheduled" and run["delay_seconds"] == 600
    assert run["audience"] == SEGMENT and run["audience_kind"] == "segment_id"
    assert run["campaign"] == "Welcome" and run["requested_by"] == "ops-team"
    # Bounded by the clock around the request, not by created_at: that is the start of the
    # test session's transaction, earlier by however slow the machine is.
    scheduled = datetime.fromisoformat(run["scheduled_at"])
    delay = timedelta(seconds=600)
    assert asked + delay <= scheduled <= answered + delay
    assert datetime.fromisoformat(run["created_at"]) <= answered
    assert run["progress"] == {
        "audience_size": None, "processed": 0, "published": 0, "delivered": 0, "pending": 0,
        "skipped": {"total": 0, "reasons": {}}, "failed": {"total": 0, "reasons": {}},
    }  # fmt: skip


async def test_a_shorter_delay_needs_send_now(client: httpx.AsyncClient) -> None:
    distribution_id = await _distribution(client)
    for delay in (0, 599):
        refused = await _run(client, distribution_id, {"audience": SEGMENT, "delay_seconds": delay})
        assert refused.status_code == 422
        assert "send_now" in _messages(refused)
    # send_now allows a shorter delay; the delay is still 600 s unless one is given.
    allowed = await _run(client, distribution_id, {"audience": SEGMENT, "send_now": True})
    assert allowed.status_code == 202 and allowed.json()["delay_seconds"] == 600
    now = await _run(
        client, distribution_id, {"audience": SEGMENT, "delay_seconds": 0, "send_now": True}
    )
    assert now.status_code == 202 and now.json()["delay_seconds"] == 0
    later = await _run(
        client, distribution_id, {"audience": SEGMENT, "delay_seconds": 60, "send_now": True}
    )
    assert later.json()["delay_seconds"] == 60


async def test_the_audience_is_exactly_one_kind(client: httpx.AsyncClient) -> None:
    distribution_id = await _distribution(client)
    audiences: list[dict[str, Any]] = [
        {}, {"segment_id": "s", "customer_ids": ["c"]}, {"customer_ids": []},
        {"segment_id": "s", "emails": ["a@b.c"]},
    ]  # fmt: skip
    for audience in audiences:
        answer = await _run(client, distribution_id, {"audience": audience})
        assert answer.status_code == 422, audience
    no_audience = await _run(client, distribution_id, {"delay_seconds": 600})
    assert no_audience.status_code == 422
    listed = await _run(client, distribution_id, {"audience": {"source_ids": ["a", "b", "a"]}})
    assert listed.json()["audience"] == {"source_ids": ["a", "b"]}
    assert listed.json()["progress"]["audience_size"] == 2


async def test_a_distribution_with_codes_from_the_event_cannot_be_run(
    client: httpx.AsyncClient,
) -> None:
    distribution_id = await _distribution(client, code_source={"type": "event"})
    answer = await _run(client, distribution_id, {"audience": SEGMENT})
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "distribution_not_runnable"
    assert '"type": "publish"' in answer.json()["error"]["message"]


async def test_an_unset_distribution_runs_without_a_campaign(client: httpx.AsyncClient) -> None:
    distribution_id = await _distribution(client, code_source={"type": "event"}, action="unset")
    answer = await _run(client, distribution_id, {"audience": SEGMENT})
    assert answer.status_code == 202 and answer.json()["campaign"] is None


async def test_unknown_deleted_and_paused_distributions(client: httpx.AsyncClient) -> None:
    unknown = await _run(client, "6f1d9a52-3c1e-4c55-9b0e-000000000000", {"audience": SEGMENT})
    assert unknown.status_code == 404
    deleted = await _distribution(client, name="deleted")
    await client.delete(f"/api/v1/distributions/{deleted}", headers=WRITER)
    assert (await _run(client, deleted, {"audience": SEGMENT})).status_code == 404
    paused = await _distribution(client, name="paused")
    await client.post(f"/api/v1/distributions/{paused}/pause", headers=WRITER)
    answer = await _run(client, paused, {"audience": SEGMENT})
    assert answer.status_code == 409 and "paused" in answer.json()["error"]["message"]


async def test_a_read_only_token_can_read_but_not_create_or_cancel(
    client: httpx.AsyncClient,
) -> None:
    distribution_id = await _distribution(client)
    assert (await _run(client, distribution_id, {"audience": SEGMENT}, READER)).status_code == 403
    run = (await _run(client, distribution_id, {"audience": SEGMENT})).json()
    assert (
        await client.post(f"/api/v1/runs/{run['id']}/cancel", headers=READER)
    ).status_code == 403
    assert (await client.get(f"/api/v1/runs/{run['id']}", headers=READER)).status_code == 200
    assert (await client.get("/api/v1/runs")).status_code == 401


async def test_cancel_stops_a_scheduled_run_and_refuses_a_finished_one(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    distribution_id = await _distribution(client)
    run = (await _run(client, distribution_id, {"audience": SEGMENT})).json()
    canceled = await client.post(f"/api/v1/runs/{run['id']}/cancel", headers=WRITER)
    assert canceled.status_code == 200
    assert canceled.json()["status"] == "canceled" and canceled.json()["canceled_by"] == "ops-team"
    again = await client.post(f"/api/v1/runs/{run['id']}/cancel", headers=WRITER)
    assert again.status_code == 200 and again.json()["status"] == "canceled"

    finished = (await _run(client, distribution_id, {"audience": SEGMENT})).json()
    await session.execute(
        text("UPDATE runs SET status = 'done' WHERE id = :id"), {"id": finished["id"]}
    )
    refused = await client.post(f"/api/v1/runs/{finished['id']}/cancel", headers=WRITER)
    assert refused.status_code == 409 and "has finished" in refused.json()["error"]["message"]
    missing = await client.post("/api/v1/runs/999999/cancel", headers=WRITER)
    assert missing.status_code == 404
    assert (await client.get("/api/v1/runs/999999", headers=WRITER)).status_code == 404


async def test_runs_are_listed_newest_first_by_distribution_and_status(
    client: httpx.AsyncClient,
) -> None:
    first = await _distribution(client, name="first")
    second = await _distribution(client, name="second")
    ids = [(await _run(client, first, {"audience": SEGMENT})).json()["id"] for _ in range(3)]
    other = (await _run(client, second, {"audience": {"customer_ids": ["c1"]}})).json()["id"]
    await client.post(f"/api/v1/runs/{ids[0]}/cancel", headers=WRITER)

    page = (await client.get("/api/v1/runs", params={"limit": 2}, headers=READER)).json()
    assert [r["id"] for r in page["items"]] == [other, ids[2]]
    rest = await client.get(
        "/api/v1/runs", params={"limit": 2, "cursor": page["next_cursor"]}, headers=READER
    )
    assert [r["id"] for r in rest.json()["items"]] == [ids[1], ids[0]]
    assert "audience" not in rest.json()["items"][0]  # listed ids stay in the run's own page

    by_distribution = await client.get(
        "/api/v1/runs", params={"distribution_id": second}, headers=READER
    )
    assert [r["id"] for r in by_distribution.json()["items"]] == [other]
    canceled = await client.get("/api/v1/runs", params={"status": "canceled"}, headers=READER)
    assert [r["id"] for r in canceled.json()["items"]] == [ids[0]]
    bad = await client.get("/api/v1/runs", params={"status": "paused"}, headers=READER)
    assert bad.status_code == 422


async def test_send_now_must_be_a_real_boolean(client: httpx.AsyncClient) -> None:
    distribution_id = await _distribution(client)
    for loose in ("yes", 1):
        refused = await _run(client, distribution_id, {"audience": SEGMENT, "send_now": loose})
        assert refused.status_code == 422
        assert ["body", "send_now"] in [d["loc"] for d in refused.json()["error"]["details"]]
