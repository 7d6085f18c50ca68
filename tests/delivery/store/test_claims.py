"""Claims never wait on each other: users held by a slow or stuck claim are passed over, and a
claim that runs past its budget fails loudly while its lane carries on."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import asyncpg
import pytest
from prometheus_client import REGISTRY

from app.delivery.budget import StatementTimeoutError
from app.delivery.store.claims import LOCK_SPACE
from tests.delivery.conftest import Emulator, WorkerFactory, add_distribution, statuses


async def _due(pool: asyncpg.Pool, prefix: str, users: int, each: int, age: timedelta) -> list[str]:
    distribution = await add_distribution(pool)
    await pool.execute(
        """
        INSERT INTO deliveries (distribution_id, distribution_version, braze_user_key,
            attributes, next_attempt_at)
        SELECT $1, 1, 'external_id:' || $2::text || (g % $3::int),
            jsonb_build_object('external_id', $2 || (g % $3), 'code', 'C' || g),
            now() - $4::interval
        FROM generate_series(0, $3::int * $5::int - 1) AS g
        """,
        distribution, prefix, users, age, each,
    )  # fmt: skip
    return [f"external_id:{prefix}{n}" for n in range(users)]


async def test_users_a_stuck_claim_holds_do_not_stop_anyone_else_being_claimed(
    pool: asyncpg.Pool, make_worker: WorkerFactory
) -> None:
    # The oldest 400 due deliveries belong to 40 users whose locks a stuck claim holds: more
    # than one window of candidates (4 rows per user wanted).
    stuck = await _due(pool, "stuck-", users=40, each=10, age=timedelta(hours=1))
    free = await _due(pool, "free-", users=10, each=1, age=timedelta(minutes=1))
    holder = await pool.acquire()
    try:
        async with holder.transaction():
            await holder.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(k, $2))"
                " FROM unnest($1::text[]) AS k",
                stuck, LOCK_SPACE,
            )  # fmt: skip
            worker = await make_worker()
            claimed, _ = await worker.queue.claim(users=75)
            assert {d.braze_user_key for d in claimed.deliveries} == set(free)
    finally:
        await pool.release(holder)


def _timeouts(statement: str) -> float:
    value = REGISTRY.get_sample_value(
        "voucher_relay_worker_statement_timeouts_total", {"statement": statement}
    )
    return value or 0.0


async def test_a_claim_past_its_statement_timeout_fails_loudly_and_the_lane_carries_on(
    pool: asyncpg.Pool, emulator: Emulator, make_worker: WorkerFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    await _due(pool, "mia-", users=1, each=1, age=timedelta(seconds=1))
    worker = await make_worker(statement_timeout=0.3)
    before = _timeouts("reap")
    holder = await pool.acquire()
    try:
        async with holder.transaction():
            # Every statement on deliveries waits behind this lock, as behind a runaway plan.
            await holder.execute("LOCK TABLE deliveries IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(StatementTimeoutError):
                await worker.queue.claim(users=75)
            assert _timeouts("reap") == before + 1
            assert any(
                r.levelno == logging.ERROR and "worker statement reap" in r.getMessage()
                for r in caplog.records
            )
            stop = asyncio.Event()
            lanes = asyncio.create_task(worker.run(stop))
            await asyncio.sleep(0.8)  # a few cycles fail meanwhile
    finally:
        await pool.release(holder)
    for _ in range(100):
        if await statuses(pool) == {"delivered": 1}:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await lanes
    assert await statuses(pool) == {"delivered": 1}
    assert len(emulator.state.requests_snapshot()) == 1
