"""Retention prunes old audit rows in batches and never touches pending work."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from app.delivery.store.retention import prune
from app.worker.runner import create_pool
from tests.conftest import truncate_all


@pytest.fixture
async def pool(database_url: URL, engine: AsyncEngine) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, size=2, connect_timeout=5)
    yield pool
    await pool.close()
    await truncate_all(engine)


async def add(pool: asyncpg.Pool, name: str, *, days_old: int, status: str) -> int:
    """An event with one delivery, attempt and Braze request, `days_old` days ago."""
    age = timedelta(days=days_old)
    distribution = await pool.fetchval(
        "INSERT INTO distributions (name, triggers, code_source, identity, mapping)"
        " VALUES ($1, '{customer.order.paid}', '{}', '{}', '[]') RETURNING id",
        f"{name}-{uuid.uuid4().hex[:6]}",
    )
    event = await pool.fetchval(
        "INSERT INTO webhook_events (voucherify_event_id, source_id, source_object, event_type,"
        " signature_result, outcome, received_at, raw_body)"
        " VALUES ($1, 'distr_1', 'distribution', 'customer.order.paid', 'valid_raw', 'matched',"
        " now() - $2::interval, '{}') RETURNING id",
        name, age,
    )  # fmt: skip
    delivery = await pool.fetchval(
        "INSERT INTO deliveries (distribution_id, distribution_version, event_id, status,"
        " created_at) VALUES ($1, 1, $2, $3, now() - $4::interval) RETURNING id",
        distribution, event, status, age,
    )  # fmt: skip
    request = await pool.fetchval(
        "INSERT INTO braze_requests (started_at, duration_ms, kind, objects, request_bytes)"
        " VALUES (now() - $1::interval, 5, 'delivered', 1, 10) RETURNING id",
        age,
    )
    await pool.execute(
        "INSERT INTO delivery_attempts (delivery_id, braze_request_id, outcome, attempted_at)"
        " VALUES ($1, $2, 'delivered', now() - $3::interval)",
        delivery, request, age,
    )  # fmt: skip
    return int(event)


async def count(pool: asyncpg.Pool, table: str) -> int:
    return int(await pool.fetchval(f"SELECT count(*) FROM {table}"))


async def test_old_settled_rows_go_new_rows_and_pending_work_stay(pool: asyncpg.Pool) -> None:
    for n in range(5):
        await add(pool, f"old-{n}", days_old=40, status="delivered")
    old_pending = await add(pool, "old-pending", days_old=40, status="pending")
    recent = await add(pool, "recent", days_old=1, status="delivered")

    pruned = await prune(pool, older_than=timedelta(days=30), batch=2)

    assert pruned.rows == {
        "deliveries": 5, "runs": 0, "braze_requests": 6, "replays": 0, "webhook_events": 5
    }  # fmt: skip
    events = {r["id"] for r in await pool.fetch("SELECT id FROM webhook_events")}
    assert events == {old_pending, recent}
    assert (
        await pool.fetchval("SELECT status FROM deliveries WHERE event_id = $1", old_pending)
        == "pending"
    )
    assert await count(pool, "deliveries") == 2
    assert await count(pool, "delivery_attempts") == 2  # their Braze requests are gone: links null
    assert (
        await pool.fetchval("SELECT count(*) FROM delivery_attempts WHERE braze_request_id IS NULL")
        == 1
    )
    assert (await prune(pool, older_than=timedelta(days=30))).rows["webhook_events"] == 0


async def test_unfinished_replays_are_kept_whatever_their_age(pool: asyncpg.Pool) -> None:
    for status in ("done", "canceled", "queued", "running"):
        await pool.execute(
            "INSERT INTO replays (kind, requested_by, filter, status, requested_at)"
            " VALUES ('bulk', 'ops', '{}', $1, now() - interval '40 days')",
            status,
        )

    pruned = await prune(pool, older_than=timedelta(days=30), batch=10)

    assert pruned.rows["replays"] == 2
    left = {r["status"] for r in await pool.fetch("SELECT status FROM replays")}
    assert left == {"queued", "running"}


async def add_run(
    pool: asyncpg.Pool, status: str, *, days_old: int, delivery: str | None = None
) -> int:
    """A run in `status` that finished (or was canceled, or scheduled) `days_old` days ago,
    with one delivery in status `delivery` created then, if given."""
    age = timedelta(days=days_old)
    distribution = await pool.fetchval(
        "INSERT INTO distributions (name, triggers, code_source, identity, mapping)"
        " VALUES ($1, '{customer.order.paid}', '{}', '{}', '[]') RETURNING id",
        f"run-{uuid.uuid4().hex[:6]}",
    )
    run = await pool.fetchval(
        "INSERT INTO runs (distribution_id, distribution_version, status, audience, delay_seconds,"
        " scheduled_at, requested_by, started_at, finished_at, canceled_at, created_at)"
        " VALUES ($1, 1, $2::varchar, '{\"segment_id\": \"seg_1\"}', 600,"
        " now() - $3::interval, 'ops',"
        " CASE WHEN $2::varchar NOT IN ('scheduled', 'canceled') THEN now() - $3::interval END,"
        " CASE WHEN $2::varchar IN ('done', 'failed') THEN now() - $3::interval END,"
        " CASE WHEN $2::varchar = 'canceled' THEN now() - $3::interval END, now() - $3::interval)"
        " RETURNING id",
        distribution, status, age,
    )  # fmt: skip
    if delivery is not None:
        await pool.execute(
            "INSERT INTO deliveries (distribution_id, distribution_version, trigger, run_id,"
            " run_member, status, created_at) VALUES ($1, 1, 'run', $2, 'cust_1', $3,"
            " now() - $4::interval)",
            distribution, run, delivery, age,
        )  # fmt: skip
    return int(run)


async def test_finished_runs_go_once_no_delivery_points_to_them(pool: asyncpg.Pool) -> None:
    gone = {
        await add_run(pool, "done", days_old=40),
        await add_run(pool, "canceled", days_old=40),
        await add_run(pool, "failed", days_old=40),
        # Its delivery is as old: pruned first, then the run in the same pass.
        await add_run(pool, "done", days_old=40, delivery="delivered"),
    }
    kept = {
        await add_run(pool, "done", days_old=1),
        await add_run(pool, "scheduled", days_old=40),
        await add_run(pool, "running", days_old=40),
        # A delivery still on its way keeps the run it belongs to.
        await add_run(pool, "done", days_old=40, delivery="pending"),
    }

    pruned = await prune(pool, older_than=timedelta(days=30), batch=2)

    assert pruned.rows["runs"] == len(gone)
    assert {r["id"] for r in await pool.fetch("SELECT id FROM runs")} == kept
    # The kept delivery still names its run (ON DELETE SET NULL never fired for it).
    assert await pool.fetchval("SELECT run_id FROM deliveries WHERE status = 'pending'") in kept
    assert (await prune(pool, older_than=timedelta(days=30))).rows["runs"] == 0
