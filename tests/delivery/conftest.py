"""Worker tests: a real Postgres, the Braze emulator over loopback, a worker built in the test."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from app.braze.client import BrazeClient
from app.delivery.gate import BrazeGate
from app.delivery.store.queue import DeliveryQueue
from app.delivery.work import WorkerConfig
from app.delivery.worker import Worker
from app.retry import parse_schedule
from app.sandbox.braze.emulator import create_emulator, emulator_state
from app.sandbox.braze.state import EmulatorState
from app.worker.runner import create_pool
from tests.conftest import truncate_all
from tests.e2e.servers import serve_app_in_thread

BRAZE_KEY = "test-braze-key"


@dataclass
class Emulator:
    url: str
    app: FastAPI

    @property
    def state(self) -> EmulatorState:
        return emulator_state(self.app)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    # One per test: a slow answer to a test's abandoned request must not land in the next one.
    app = create_emulator(api_key=BRAZE_KEY)
    with serve_app_in_thread(app) as url:
        yield Emulator(url, app)


@pytest.fixture
async def pool(database_url: URL, engine: AsyncEngine) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, size=10, connect_timeout=5)
    yield pool
    await pool.close()
    await truncate_all(engine)


WorkerFactory = Callable[..., Awaitable[Worker]]


@pytest.fixture
async def make_worker(
    pool: asyncpg.Pool, emulator: Emulator, database_url: URL
) -> AsyncIterator[WorkerFactory]:
    clients: list[BrazeClient] = []
    pools: list[asyncpg.Pool] = []
    workspace = f"test-{uuid.uuid4().hex[:8]}"

    async def make(
        *, lease: float = 30, schedule: str = "0.05s,0.05s,0.05s", probe: float = 0.2,
        api_key: str = BRAZE_KEY, concurrency: int = 1, braze_timeout: float = 5.0,
        workspace: str = workspace, statement_timeout: float | None = None,
    ) -> Worker:  # fmt: skip
        client = BrazeClient(
            base_url=emulator.url, api_key=SecretStr(api_key), timeout=braze_timeout
        )
        clients.append(client)
        queue_pool = pool
        if statement_timeout is not None:
            queue_pool = await create_pool(
                database_url, size=4, connect_timeout=5, statement_timeout=statement_timeout
            )
            pools.append(queue_pool)
        return Worker(
            queue=DeliveryQueue(
                queue_pool, worker_id=f"w-{uuid.uuid4().hex[:6]}", lease=timedelta(seconds=lease)
            ),
            braze=client,
            gate=BrazeGate(
                pool, workspace=workspace, requests=3000, window_seconds=3, probe_interval=probe
            ),
            config=WorkerConfig(
                batch_size=75,
                concurrency=concurrency,
                poll_seconds=0.05,
                lease=timedelta(seconds=lease),
                schedule=parse_schedule(schedule),
            ),
        )

    yield make
    for client in clients:
        await client.aclose()
    for extra in pools:
        await extra.close()


async def add_distribution(pool: asyncpg.Pool) -> uuid.UUID:
    distribution_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO distributions (id, name, triggers, code_source, identity, mapping)"
        " VALUES ($1, $2, '{customer.segment.entered}', '{}', '{}', '[]')",
        distribution_id, f"d-{distribution_id.hex[:8]}",
    )  # fmt: skip
    return distribution_id


async def enqueue(
    pool: asyncpg.Pool,
    updates: list[tuple[str, dict[str, Any]]],
    *,
    event_time: datetime | None = None,
    force: bool = False,
) -> list[int]:
    """Pending deliveries: (external id, attributes) each, as intake would store them."""
    distribution_id = await add_distribution(pool)
    when = event_time or datetime.now(UTC)
    rows = await pool.fetch(
        """
        INSERT INTO deliveries (distribution_id, distribution_version, braze_user_key,
            attributes, event_time, force)
        SELECT $1, 1, 'external_id:' || u, ('{"external_id": ' || to_json(u)::text || '}')::jsonb
               || a::jsonb, $4, $5
        FROM unnest($2::text[], $3::text[]) AS x(u, a)
        RETURNING id
        """,
        distribution_id, [u for u, _ in updates], [json.dumps(a) for _, a in updates],
        when, force,
    )  # fmt: skip
    return [r["id"] for r in rows]


async def drain(worker: Worker, *, within: float = 20) -> None:
    """Run cycles until nothing is pending or in flight (waiting out retries and pauses)."""
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        if not await worker.cycle():
            left = await worker.queue.pool.fetchval(
                "SELECT count(*) FROM deliveries WHERE status IN ('pending', 'in_flight')"
            )
            if not left:
                return
            await asyncio.sleep(0.05)
    raise AssertionError("deliveries still pending after the timeout")


async def statuses(pool: asyncpg.Pool) -> dict[str, int]:
    rows = await pool.fetch("SELECT status, count(*) AS n FROM deliveries GROUP BY status")
    return {r["status"]: r["n"] for r in rows}
