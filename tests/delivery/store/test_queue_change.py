"""A pause, resume or delete changes a large queue in batches after the answer
(delivery/queue_change.py): progress shown, rows a claim holds passed over, and the workers'
tending lane carrying on what an API that died left."""

from __future__ import annotations

import uuid

import asyncpg
import httpx
import pytest

from app.delivery.store import queue_change
from app.delivery.store.hold import tend
from tests.conftest import WRITER
from tests.delivery.store.test_hold import post
from tests.factories import distribution_body

ROWS = 2 * queue_change.BATCH + 123
HELD = "SELECT count(*) FROM deliveries WHERE next_attempt_at >= '9999-01-01'"


async def distribution_with_queue(client: httpx.AsyncClient, pool: asyncpg.Pool) -> str:
    created = await client.post(
        "/api/v1/distributions", json=distribution_body(filters={}, consent=None), headers=WRITER
    )
    assert created.status_code == 201, created.text
    distribution_id: str = created.json()["id"]
    await pool.execute(
        "INSERT INTO deliveries (distribution_id, distribution_version, braze_user_key,"
        " attributes) SELECT $1, 1, 'external_id:u-' || g, '{\"code\": \"A\"}'"
        " FROM generate_series(1, $2) AS g",
        uuid.UUID(distribution_id), ROWS,
    )  # fmt: skip
    return distribution_id


async def mark(pool: asyncpg.Pool, distribution_id: str) -> tuple[str | None, int]:
    row = await pool.fetchrow(
        "SELECT queue_change, queue_changed FROM distributions WHERE id = $1",
        uuid.UUID(distribution_id),
    )
    return row["queue_change"], row["queue_changed"]


async def test_a_pause_holds_the_queue_in_batches_and_counts_them(
    committing_client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    distribution_id = await distribution_with_queue(committing_client, pool)
    await post(committing_client, f"/api/v1/distributions/{distribution_id}/pause")
    assert await pool.fetchval(HELD) == ROWS
    assert await mark(pool, distribution_id) == (None, ROWS)  # done, and how many
    shown = await committing_client.get(f"/api/v1/distributions/{distribution_id}", headers=WRITER)
    assert (shown.json()["queue_change"], shown.json()["queue_changed"]) == (None, ROWS)

    await post(committing_client, f"/api/v1/distributions/{distribution_id}/resume")
    assert await pool.fetchval(HELD) == 0
    assert await mark(pool, distribution_id) == (None, ROWS)


async def test_each_batch_is_its_own_transaction_and_shows_progress(
    committing_client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    distribution_id = await distribution_with_queue(committing_client, pool)
    # Marked as a pause whose API died before its first batch.
    await pool.execute(
        "UPDATE distributions SET status = 'paused', queue_change = 'hold' WHERE id = $1",
        uuid.UUID(distribution_id),
    )
    async with pool.acquire() as connection:
        batch = await queue_change.run_batch(connection, uuid.UUID(distribution_id))
    assert batch is not None and batch[0] == queue_change.BATCH
    assert await pool.fetchval(HELD) == queue_change.BATCH  # committed, visible to all
    assert await mark(pool, distribution_id) == ("hold", queue_change.BATCH)
    shown = await committing_client.get(f"/api/v1/distributions/{distribution_id}", headers=WRITER)
    assert (shown.json()["queue_change"], shown.json()["queue_changed"]) == (
        "hold", queue_change.BATCH,
    )  # fmt: skip


async def test_the_tending_lane_carries_on_a_change_the_api_left(
    committing_client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    distribution_id = await distribution_with_queue(committing_client, pool)
    await pool.execute(
        "UPDATE distributions SET status = 'paused', queue_change = 'hold' WHERE id = $1",
        uuid.UUID(distribution_id),
    )
    assert await queue_change.continue_changes(pool) == ROWS
    assert await pool.fetchval(HELD) == ROWS
    assert await mark(pool, distribution_id) == (None, ROWS)
    assert await queue_change.continue_changes(pool) == 0  # nothing left marked


async def test_rows_a_claim_holds_are_passed_over_and_held_by_the_sweep(
    committing_client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    distribution_id = await distribution_with_queue(committing_client, pool)
    async with pool.acquire() as claim, claim.transaction():
        # A claim's transaction holding ten rows: the pause does not wait for it.
        await claim.execute(
            "SELECT id FROM deliveries ORDER BY next_attempt_at LIMIT 10 FOR UPDATE"
        )
        await post(committing_client, f"/api/v1/distributions/{distribution_id}/pause")
        assert await pool.fetchval(HELD) == ROWS - 10
        assert await mark(pool, distribution_id) == (None, ROWS - 10)
    assert await tend(pool) == (10, 0, 0)  # the sweep holds them once the claim is over
    assert await pool.fetchval(HELD) == ROWS


@pytest.mark.parametrize("change", ["release", "skip"])
async def test_a_batch_stops_when_the_distribution_is_being_changed(
    committing_client: httpx.AsyncClient, pool: asyncpg.Pool, change: str
) -> None:
    distribution_id = await distribution_with_queue(committing_client, pool)
    await pool.execute(
        "UPDATE distributions SET queue_change = $2 WHERE id = $1",
        uuid.UUID(distribution_id), change,
    )  # fmt: skip
    async with pool.acquire() as other, other.transaction():
        # A pause, resume or delete in its transaction: it marks the next change itself.
        await other.execute(
            "SELECT 1 FROM distributions WHERE id = $1 FOR UPDATE", uuid.UUID(distribution_id)
        )
        async with pool.acquire() as connection:
            assert await queue_change.run_batch(connection, uuid.UUID(distribution_id)) is None


async def test_deleting_a_paused_distribution_skips_its_queue_in_batches(
    committing_client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    distribution_id = await distribution_with_queue(committing_client, pool)
    url = f"/api/v1/distributions/{distribution_id}"
    await post(committing_client, f"{url}/pause")
    deleted = await committing_client.delete(url, headers=WRITER)
    assert deleted.status_code == 200, deleted.text
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM deliveries WHERE status = 'skipped'"
            " AND skip_reason = 'distribution_deleted'"
        )
        == ROWS
    )
    assert await pool.fetchval("SELECT count(*) FROM delivery_attempts") == ROWS
    assert await mark(pool, distribution_id) == (None, ROWS)
