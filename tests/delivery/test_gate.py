"""The Braze gate shared through Postgres: the request budget, pauses and blocks."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg

from app.braze.classify import Classification, Kind, RateLimitReading
from app.braze.client import BrazeCallResult
from app.delivery.answers import react_to
from app.delivery.gate import BrazeGate
from tests.delivery.conftest import WorkerFactory


async def test_two_workers_share_one_request_budget(pool: asyncpg.Pool) -> None:
    # 10 requests per second, bursts of 1: 20 requests need about 2 seconds, however split.
    first = BrazeGate(pool, workspace="shared", requests=10, window_seconds=1)
    second = BrazeGate(pool, workspace="shared", requests=10, window_seconds=1)
    started = asyncio.get_running_loop().time()
    await asyncio.gather(*(gate.acquire() for gate in [first, second] * 10))
    elapsed = asyncio.get_running_loop().time() - started
    assert 1.7 <= elapsed <= 4.0


async def test_a_pause_holds_every_worker(pool: asyncpg.Pool) -> None:
    gate = BrazeGate(pool, workspace="paused", requests=1000, window_seconds=1)
    other = BrazeGate(pool, workspace="paused", requests=1000, window_seconds=1)
    await gate.pause(until=datetime.now(UTC) + timedelta(seconds=1))
    started = asyncio.get_running_loop().time()
    await other.acquire()
    assert asyncio.get_running_loop().time() - started >= 0.8


async def test_low_remaining_rate_limit_pauses_sending(make_worker: WorkerFactory) -> None:
    worker = await make_worker()
    reading = RateLimitReading(limit=1000, remaining=20, resets_in=timedelta(seconds=2))
    call = BrazeCallResult(
        classification=Classification(Kind.DELIVERED, 1, 201, rate_limit=reading),
        status_code=201, headers={}, body="", duration=timedelta(milliseconds=5),
        request_bytes=10, object_count=1,
    )  # fmt: skip
    await react_to(
        call, gate=worker.gate, queue=worker.queue, probing=False,
        low_remaining_fraction=worker.config.low_remaining_fraction,
    )  # fmt: skip
    paused_until = (await worker.gate.state()).paused_until
    assert paused_until is not None
    assert paused_until - datetime.now(UTC) > timedelta(seconds=1)
