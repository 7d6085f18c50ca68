"""While Postgres is unreachable a lane waits longer after each failure in a row and logs one
traceback per streak, not one per poll; it says once when it works again."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from pydantic import SecretStr
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from app.delivery.failures import FailureStreak
from app.ops.bulk_replay import ReplayRunner
from app.retry import parse_schedule
from app.runs.executor import RunExecutor
from app.voucherify.client import VoucherifyClient
from app.worker.lanes import QueueLanes
from app.worker.publisher import Publisher
from app.worker.runner import create_pool
from tests.delivery.conftest import WorkerFactory

POLL = 0.05


def _lines(caplog: pytest.LogCaptureFixture, logger: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == logger and r.levelno >= logging.ERROR]


def test_waits_double_from_the_poll_interval_up_to_30_seconds_and_start_over_after_success(
    caplog: pytest.LogCaptureFixture,
) -> None:
    streak = FailureStreak(logging.getLogger("test.streak"), "lane", first_wait=0.5)
    waits = [streak.failed(ConnectionRefusedError("refused")) for _ in range(9)]
    assert waits == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    streak.succeeded()
    assert streak.failed(ConnectionRefusedError("refused")) == 0.5


def test_only_the_first_failure_of_a_streak_has_a_traceback_and_recovery_is_said_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="test.streak")
    streak = FailureStreak(logging.getLogger("test.streak"), "publishing", first_wait=1)
    for _ in range(4):
        try:
            raise ConnectionRefusedError("[Errno 111] Connection refused")
        except ConnectionRefusedError as exc:
            streak.failed(exc, "the leases expire")
    streak.succeeded()
    streak.succeeded()
    errors = _lines(caplog, "test.streak")
    assert [r.exc_info is not None for r in errors] == [True, False, False, False]
    assert errors[0].getMessage() == "publishing failed; the leases expire; next try in 1 s"
    assert errors[3].getMessage() == (
        "publishing failed again (4 in a row): ConnectionRefusedError: [Errno 111] Connection "
        "refused; next try in 8 s"
    )
    recovered = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert recovered == ["publishing works again after 4 failures in a row"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _unreachable(database_url: URL) -> URL:
    """The test database's URL on a port where no Postgres listens (TCP or Unix socket)."""
    return database_url.set(port=_free_port())


@pytest.fixture
async def dead_pool(database_url: URL) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(_unreachable(database_url), size=2, connect_timeout=1)
    yield pool
    await pool.close()


async def _run_for(
    seconds: float, lane: Callable[[asyncio.Event], Coroutine[Any, Any, None]]
) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(lane(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait_for(task, 10)


async def test_a_worker_lane_backs_off_while_postgres_is_unreachable_and_says_when_it_is_back(
    caplog: pytest.LogCaptureFixture,
    make_worker: WorkerFactory,
    pool: asyncpg.Pool,
    dead_pool: asyncpg.Pool,
) -> None:
    caplog.set_level(logging.INFO, logger="app.delivery.worker")
    worker = await make_worker()
    worker.queue.pool = dead_pool  # claims fail as when Postgres is down
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        # Waits of 0.05, 0.1, 0.2, 0.4, 0.8 s: about 5 tries in 1.5 s (30 at a fixed poll).
        await asyncio.sleep(1.5)
        errors = _lines(caplog, "app.delivery.worker")
        assert 3 <= len(errors) <= 7, [r.getMessage() for r in errors]
        assert [r.exc_info is not None for r in errors] == [True] + [False] * (len(errors) - 1)
        assert "2 in a row" in errors[1].getMessage()

        worker.queue.pool = pool  # Postgres is back
        for _ in range(100):
            if any("works again" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    recovered = [r.getMessage() for r in caplog.records if "works again" in r.getMessage()]
    assert recovered == [f"worker cycle works again after {len(errors)} failures in a row"]


async def test_the_publisher_lane_backs_off_while_postgres_is_unreachable(
    caplog: pytest.LogCaptureFixture, dead_pool: asyncpg.Pool
) -> None:
    voucherify = VoucherifyClient(
        base_url="http://127.0.0.1:9", app_id="app", app_token=SecretStr("token")
    )
    publisher = Publisher(
        dead_pool, voucherify=voucherify, worker_id="w-dead", lease=timedelta(seconds=30),
        schedule=parse_schedule("1s"),
    )  # fmt: skip
    lanes = QueueLanes(pool=dead_pool, wake=asyncio.Event(), poll_seconds=POLL, publisher=publisher)
    await _run_for(1.2, lanes.run)
    await voucherify.aclose()
    lines = _lines(caplog, "app.worker.lanes")
    errors = [r for r in lines if r.getMessage().startswith("publishing")]
    assert 3 <= len(errors) <= 7, [r.getMessage() for r in errors]
    assert [r.exc_info is not None for r in errors] == [True] + [False] * (len(errors) - 1)
    # The queue sweep, beside it, waits its 30 s: one line, with the traceback.
    sweep = [r for r in lines if r.getMessage().startswith("queue sweep")]
    assert [r.exc_info is not None for r in sweep] == [True]


async def test_the_run_lane_backs_off_while_postgres_is_unreachable(
    caplog: pytest.LogCaptureFixture, dead_pool: asyncpg.Pool
) -> None:
    voucherify = VoucherifyClient(
        base_url="http://127.0.0.1:9", app_id="app", app_token=SecretStr("token")
    )
    executor = RunExecutor(
        dead_pool, voucherify=voucherify, worker_id="w-dead", lease=timedelta(seconds=30)
    )
    await _run_for(1.2, lambda stop: executor.run(stop, poll_seconds=POLL))
    await voucherify.aclose()
    errors = _lines(caplog, "app.runs.executor")
    assert 3 <= len(errors) <= 7, [r.getMessage() for r in errors]
    assert [r.exc_info is not None for r in errors] == [True] + [False] * (len(errors) - 1)


async def test_the_replay_lane_backs_off_while_postgres_is_unreachable(
    caplog: pytest.LogCaptureFixture, database_url: URL
) -> None:
    engine = create_async_engine(
        _unreachable(database_url), pool_size=1, connect_args={"timeout": 1}
    )
    runner = ReplayRunner(
        async_sessionmaker(engine), worker_id="w-dead", batch_size=10,
        lease=timedelta(seconds=30), poll_seconds=POLL,
    )  # fmt: skip
    await _run_for(1.2, runner.lane)
    await engine.dispose()
    errors = _lines(caplog, "app.ops.bulk_replay")
    assert 3 <= len(errors) <= 7, [r.getMessage() for r in errors]
    assert [r.exc_info is not None for r in errors] == [True] + [False] * (len(errors) - 1)
