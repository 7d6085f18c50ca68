"""Pausing a distribution holds its queued deliveries; resuming it sends them
(app/delivery/store/hold.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.delivery.store.hold import tend
from app.metrics.collectors import _QUEUE
from tests.conftest import WRITER
from tests.delivery.conftest import Emulator, WorkerFactory, drain, statuses
from tests.factories import distribution_body, sample, signed

USER = "external_id:braze-usr-10042"
HELD = "SELECT next_attempt_at > now() + interval '1000 years' FROM deliveries"


async def queued_delivery(client: httpx.AsyncClient) -> str:
    """A distribution and one delivery of it, queued by a webhook; the distribution's id."""
    created = await client.post(
        "/api/v1/distributions", json=distribution_body(filters={}, consent=None), headers=WRITER
    )
    assert created.status_code == 201, created.text
    raw, headers = signed(sample("customer.segment.entered"))
    assert (await client.post("/webhooks/voucherify", content=raw, headers=headers)).json()[
        "deliveries"
    ] == 1
    distribution_id: str = created.json()["id"]
    return distribution_id


async def post(client: httpx.AsyncClient, url: str, **kwargs: Any) -> None:
    answer = await client.post(url, headers=WRITER, **kwargs)
    assert answer.status_code == 200, answer.text


async def test_a_paused_distribution_sends_nothing_queued_until_it_is_resumed(
    committing_client: httpx.AsyncClient, pool: asyncpg.Pool, emulator: Emulator,
    make_worker: WorkerFactory,
) -> None:  # fmt: skip
    distribution_id = await queued_delivery(committing_client)
    await post(committing_client, f"/api/v1/distributions/{distribution_id}/pause")
    worker = await make_worker()
    assert await worker.cycle() == 0
    assert await statuses(pool) == {"pending": 1}
    shown = await committing_client.get("/api/v1/deliveries", headers=WRITER)
    assert shown.json()["items"][0]["next_attempt_at"].startswith("9999-01-01")  # held

    # One that turned due meanwhile (a retry of a send in flight at the pause) waits too.
    await pool.execute("UPDATE deliveries SET next_attempt_at = now()")
    assert await worker.cycle() == 0
    assert emulator.state.requests_snapshot() == []

    await post(committing_client, f"/api/v1/distributions/{distribution_id}/resume")
    await drain(worker)
    assert await statuses(pool) == {"delivered": 1}
    assert emulator.state.profiles_snapshot()[USER]["welcome_code"] == "WELCOME-7QX2KD"


async def test_pausing_by_patch_holds_and_resuming_sends_at_once(
    committing_client: httpx.AsyncClient, pool: asyncpg.Pool, make_worker: WorkerFactory,
) -> None:  # fmt: skip
    distribution_id = await queued_delivery(committing_client)
    url = f"/api/v1/distributions/{distribution_id}"
    paused = await committing_client.patch(url, json={"status": "paused"}, headers=WRITER)
    assert paused.status_code == 200, paused.text
    assert await pool.fetchval(HELD)

    resumed = await committing_client.patch(url, json={"status": "active"}, headers=WRITER)
    assert resumed.status_code == 200, resumed.text
    assert await pool.fetchval("SELECT next_attempt_at <= now() FROM deliveries")
    await drain(await make_worker())
    assert await statuses(pool) == {"delivered": 1}


async def test_deleting_a_paused_distribution_skips_what_it_held(
    committing_client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    distribution_id = await queued_delivery(committing_client)
    await post(committing_client, f"/api/v1/distributions/{distribution_id}/pause")
    deleted = await committing_client.delete(
        f"/api/v1/distributions/{distribution_id}", headers=WRITER
    )
    assert deleted.status_code == 200, deleted.text
    row = await pool.fetchrow("SELECT status, skip_reason FROM deliveries")
    assert tuple(row) == ("skipped", "distribution_deleted")  # not pending forever
    attempt = await pool.fetchrow("SELECT outcome, message FROM delivery_attempts")
    assert tuple(attempt) == ("skipped", "the distribution was deleted while paused")


async def test_what_turns_due_while_paused_is_held_again_and_not_reported_due(
    committing_client: httpx.AsyncClient, pool: asyncpg.Pool, engine: AsyncEngine,
    make_worker: WorkerFactory,
) -> None:  # fmt: skip
    distribution_id = await queued_delivery(committing_client)
    await post(committing_client, f"/api/v1/distributions/{distribution_id}/pause")
    # A send in flight at the pause that Braze failed: back to pending with a retry due soon.
    await pool.execute("UPDATE deliveries SET next_attempt_at = now(), attempts = 1")
    async with engine.connect() as connection:
        queue = (await connection.execute(_QUEUE, {"cap": 10})).mappings().one()
    # Due to send, and taken off as a paused distribution's: no alert for a paused one.
    assert (queue["to_send"], queue["due_to_send"], queue["paused_due"]) == (1, 1, 1)

    # The end of a Braze outage hurries retries, not what a pause holds.
    worker = await make_worker()
    assert await tend(pool) == (1, 0, 0)
    assert (
        await worker.queue.hurry_retries(failed_since=datetime.now(UTC) - timedelta(hours=1)) == 0
    )
    assert await pool.fetchval(HELD)


async def test_deleting_a_paused_distribution_skips_everything_it_had_waiting(
    committing_client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    distribution_id = await queued_delivery(committing_client)
    await post(committing_client, f"/api/v1/distributions/{distribution_id}/pause")
    await pool.execute("UPDATE deliveries SET next_attempt_at = now()")  # due, not held
    url = f"/api/v1/distributions/{distribution_id}"
    assert (await committing_client.delete(url, headers=WRITER)).status_code == 200
    assert await statuses(pool) == {"skipped": 1}

    # A row written meanwhile (a run page, say) is skipped by the next sweep.
    await pool.execute(
        "INSERT INTO deliveries (distribution_id, distribution_version, braze_user_key,"
        " attributes) VALUES ($1, 1, 'external_id:late', '{\"external_id\": \"late\"}')",
        uuid.UUID(distribution_id),
    )
    assert await tend(pool) == (0, 1, 0)
    assert await statuses(pool) == {"skipped": 2}
