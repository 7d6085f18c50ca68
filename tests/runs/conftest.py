"""Run tests: the Voucherify and Braze emulators on loopback, and a worker with every lane."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from app.braze.client import BrazeClient
from app.delivery.gate import BrazeGate
from app.delivery.store.queue import DeliveryQueue
from app.delivery.work import WorkerConfig
from app.delivery.worker import Worker
from app.retry import parse_schedule
from app.runs.executor import RunExecutor
from app.sandbox.voucherify.emulator import create_voucherify_emulator, voucherify_emulator_state
from app.sandbox.voucherify.objects import Customer
from app.sandbox.voucherify.state import EmulatorState
from app.voucherify.client import VoucherifyClient
from app.worker.lanes import QueueLanes
from app.worker.publisher import Publisher
from tests.conftest import WRITER
from tests.delivery import conftest as delivery
from tests.delivery.conftest import BRAZE_KEY, Emulator
from tests.e2e.servers import serve_app_in_thread
from tests.factories import distribution_body

APP_ID, APP_TOKEN = "vr-app", "vr-token"
CAMPAIGN = "Welcome 10% Off"
SEGMENT = "seg_runs"

# The worker tests' fixtures: a Braze emulator per test and the worker's asyncpg pool.
emulator = delivery.emulator
pool = delivery.pool


@dataclass
class Voucherify:
    url: str
    state: EmulatorState

    def segment(self, count: int, *, consenting: bool = True) -> list[Customer]:
        customers = self.state.seed_customers(count=count, segment_id=SEGMENT)
        for customer in customers:
            customer.metadata["braze_opt_in"] = consenting
        return customers

    def listings(self) -> list[dict[str, Any]]:
        return [r for r in self.state.requests_snapshot() if r["path"] == "/v1/customers"]


@pytest.fixture
def voucherify() -> Iterator[Voucherify]:
    app = create_voucherify_emulator(app_id=APP_ID, app_token=APP_TOKEN)
    state = voucherify_emulator_state(app)
    state.add_campaign(name=CAMPAIGN, id="camp_welcome", count=300, pattern="WELCOME-#####")
    with serve_app_in_thread(app) as url:
        yield Voucherify(url, state)


@dataclass
class Relay:
    """One worker process's lanes, each driven by hand (or all by `run`)."""

    worker: Worker
    publisher: Publisher
    executor: RunExecutor

    async def run(self, stop: asyncio.Event) -> None:
        """Every lane, as `run_worker` runs them."""
        lanes = QueueLanes(
            pool=self.worker.queue.pool, wake=self.worker.wake,
            poll_seconds=self.worker.config.poll_seconds, publisher=self.publisher,
            runs=self.executor,
        )  # fmt: skip
        await asyncio.gather(self.worker.run(stop), lanes.run(stop))

    async def cycle(self) -> int:
        """One turn of every lane; how much work it found."""
        busy = int(await self.executor.cycle())
        busy += await self.publisher.cycle(limit=100)
        return busy + await self.worker.cycle()


RelayFactory = Callable[..., Awaitable[Relay]]


@pytest.fixture
async def make_relay(
    pool: asyncpg.Pool,
    emulator: Emulator,
    voucherify: Voucherify,
) -> AsyncIterator[RelayFactory]:
    closing: list[BrazeClient | VoucherifyClient] = []
    workspace = f"runs-{uuid.uuid4().hex[:8]}"

    async def make(
        *, lease: float = 30, page_size: int = 50, clock: Any = None, sleep: Any = None,
        max_failures: int = 12,
    ) -> Relay:  # fmt: skip
        worker_id = f"w-{uuid.uuid4().hex[:6]}"
        timing = {"clock": clock, "sleep": sleep} if clock is not None else {}
        vouchers = VoucherifyClient(
            base_url=voucherify.url, app_id=APP_ID, app_token=SecretStr(APP_TOKEN),
            requests_per_minute=100_000, **timing,
        )  # fmt: skip
        braze = BrazeClient(base_url=emulator.url, api_key=SecretStr(BRAZE_KEY), timeout=5)
        closing.extend([vouchers, braze])
        lease_time = timedelta(seconds=lease)
        schedule = parse_schedule("0.05s,0.05s")
        publisher = Publisher(
            pool, voucherify=vouchers, worker_id=worker_id, lease=lease_time, schedule=schedule
        )
        executor = RunExecutor(
            pool, voucherify=vouchers, worker_id=worker_id, lease=lease_time, page_size=page_size,
            max_failures=max_failures,
        )  # fmt: skip
        worker = Worker(
            queue=DeliveryQueue(pool, worker_id=worker_id, lease=lease_time),
            braze=braze,
            gate=BrazeGate(
                pool, workspace=workspace, requests=3000, window_seconds=3, probe_interval=0.2
            ),
            config=WorkerConfig(
                concurrency=1, poll_seconds=0.02, lease=lease_time, schedule=schedule
            ),
        )
        return Relay(worker, publisher, executor)

    yield make
    for client in closing:
        await client.aclose()


async def add_distribution(client: httpx.AsyncClient, **overrides: Any) -> str:
    body = distribution_body(**{"code_source": {"type": "publish", "campaign": CAMPAIGN},
                                **overrides})  # fmt: skip
    answer = await client.post("/api/v1/distributions", json=body, headers=WRITER)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


async def start_run(
    client: httpx.AsyncClient, distribution_id: str, audience: dict[str, Any], **options: Any
) -> dict[str, Any]:
    body = {"audience": audience, "send_now": True, "delay_seconds": 0, **options}
    answer = await client.post(
        f"/api/v1/distributions/{distribution_id}/runs", json=body, headers=WRITER
    )
    assert answer.status_code == 202, answer.text
    run: dict[str, Any] = answer.json()
    return run


async def segment_run(
    client: httpx.AsyncClient, voucherify: Voucherify, members: int
) -> tuple[str, dict[str, Any]]:
    """A distribution publishing from CAMPAIGN and a run of it over a segment of `members`:
    (distribution id, run)."""
    voucherify.segment(members)
    distribution_id = await add_distribution(client)
    return distribution_id, await start_run(client, distribution_id, {"segment_id": SEGMENT})


async def run_status(client: httpx.AsyncClient, run_id: int) -> dict[str, Any]:
    answer = await client.get(f"/api/v1/runs/{run_id}", headers=WRITER)
    assert answer.status_code == 200, answer.text
    run: dict[str, Any] = answer.json()
    return run


async def finish(
    relay: Relay, client: httpx.AsyncClient, run_id: int, *, within: float = 60
) -> dict[str, Any]:
    """Turn the lanes until the run has finished; its final state."""
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        if not await relay.cycle():
            run = await run_status(client, run_id)
            if run["status"] in ("done", "failed", "canceled"):
                return run
            await asyncio.sleep(0.02)
    raise AssertionError(f"run {run_id} did not finish: {await run_status(client, run_id)}")
