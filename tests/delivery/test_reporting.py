"""What a worker tells operators about deliveries: the settled counter (after the outcome is
recorded) and a log line for each failed Braze request and each delivery that fails or dies,
with delivery and distribution ids, never a Braze user key."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
from typing import Any

import asyncpg
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from app.braze.client import BrazeClient
from app.delivery.store.settle import LEASE_LOST
from tests.delivery.conftest import BRAZE_KEY, Emulator, WorkerFactory, drain, enqueue, statuses
from tests.e2e.processes import REPO

SETTLED = "voucher_relay_deliveries_settled_total"


def settled(outcome: str, skip_reason: str = "") -> float:
    found = REGISTRY.get_sample_value(SETTLED, {"outcome": outcome, "skip_reason": skip_reason})
    return found or 0.0


def field(record: logging.LogRecord, name: str) -> Any:
    """A structured field passed with `extra=`."""
    return vars(record)[name]


def warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records
        if r.name == "app.delivery.reporting" and r.levelno == logging.WARNING
    ]  # fmt: skip


def test_the_dead_and_failed_series_exist_at_zero_before_any_delivery_settles() -> None:
    """increase() sees no rise in a series that first appears at 1: the alert on the first
    dead delivery needs the series to be there, at 0, from the start of every process."""
    program = (
        "from prometheus_client import generate_latest\n"
        "import app.metrics.registry\n"
        "print(generate_latest().decode())"
    )
    text = subprocess.run(
        [sys.executable, "-c", program], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    for outcome in ("delivered", "failed", "dead"):
        assert f'{SETTLED}{{outcome="{outcome}",skip_reason=""}} 0.0' in text


async def test_settled_deliveries_are_counted_by_outcome_and_skip_reason(
    pool: asyncpg.Pool, make_worker: WorkerFactory
) -> None:
    await enqueue(pool, [("count-1", {"a": 1}), ("count-2", {"a": 2})])
    worker = await make_worker()
    delivered, unchanged = settled("delivered"), settled("skipped", "unchanged")
    await drain(worker)
    await enqueue(pool, [("count-1", {"a": 1})])  # Braze has it already
    await drain(worker)
    assert await statuses(pool) == {"delivered": 2, "skipped": 1}
    assert settled("delivered") - delivered == 2
    assert settled("skipped", "unchanged") - unchanged == 1


async def test_braze_5xx_until_dead_logs_each_request_and_each_dead_delivery(
    caplog: pytest.LogCaptureFixture,
    pool: asyncpg.Pool,
    emulator: Emulator,
    make_worker: WorkerFactory,
) -> None:
    caplog.set_level(logging.INFO)
    ids = await enqueue(pool, [(f"dead-{n}", {"a": n}) for n in range(7)])
    distribution = await pool.fetchval("SELECT distribution_id FROM deliveries LIMIT 1")
    emulator.state.faults.fail_next(50, status=503)
    worker = await make_worker(schedule="0.05s")
    dead_before = settled("dead")
    await drain(worker)
    assert await statuses(pool) == {"dead": 7}
    assert settled("dead") - dead_before == 7

    lines = warnings(caplog)
    requests = [r for r in lines if r.getMessage().startswith("Braze request failed")]
    assert len(requests) == 2  # the first try, then its one retry
    first = requests[0]
    shown = ", ".join(map(str, ids[:5]))
    assert first.getMessage().startswith(
        f"Braze request failed (HTTP 503): 7 deliveries ({shown}, ...): 7 retry from "
    )
    assert (first.braze_status, first.deliveries, first.delivery_ids) == (503, 7, ids[:5])  # type: ignore[attr-defined]
    assert requests[1].getMessage().endswith(": 7 dead (RETRY_SCHEDULE used up)")
    dead = [r for r in lines if "went dead" in r.getMessage()]
    assert sorted(field(r, "delivery_id") for r in dead) == ids
    assert {field(r, "distribution_id") for r in dead} == {str(distribution)}
    one = field(dead[0], "delivery_id")
    assert dead[0].getMessage() == (
        f"delivery {one} of distribution {distribution} went dead (its retries are used up); "
        f"GET /api/v1/deliveries/{one} says why"
    )
    # Braze user keys identify customers: no line carries one.
    assert not [r for r in caplog.records if "dead-" in r.getMessage() or "dead-" in str(vars(r))]


async def test_a_refused_connection_to_braze_logs_a_warning_saying_when_it_retries(
    caplog: pytest.LogCaptureFixture, pool: asyncpg.Pool, make_worker: WorkerFactory
) -> None:
    caplog.set_level(logging.INFO)
    await enqueue(pool, [("refused-1", {"a": 1})])
    worker = await make_worker(schedule="1h")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{s.getsockname()[1]}"  # closed again before the send
    worker.braze = BrazeClient(base_url=nowhere, api_key=SecretStr(BRAZE_KEY), timeout=2)
    try:
        assert await worker.cycle() == 1
    finally:
        await worker.braze.aclose()
    [line] = warnings(caplog)
    assert line.getMessage().startswith("Braze request failed (ConnectError: ")
    assert "1 deliveries (" in line.getMessage() and "1 retry from " in line.getMessage()
    assert field(line, "braze_status") is None and field(line, "retry_at") is not None


async def test_the_happy_path_logs_no_line_per_delivery(
    caplog: pytest.LogCaptureFixture, pool: asyncpg.Pool, make_worker: WorkerFactory
) -> None:
    caplog.set_level(logging.DEBUG, logger="app.delivery")
    await enqueue(pool, [(f"happy-{n}", {"a": n}) for n in range(75)])
    await drain(await make_worker())
    assert await statuses(pool) == {"delivered": 75}
    assert [r for r in caplog.records if r.name.startswith("app.delivery")] == []


async def test_an_answer_recorded_after_the_lease_expired_is_audited_but_changes_nothing(
    caplog: pytest.LogCaptureFixture,
    pool: asyncpg.Pool,
    emulator: Emulator,
    make_worker: WorkerFactory,
) -> None:
    caplog.set_level(logging.INFO)
    [delivery] = await enqueue(pool, [("lease-lost", {"a": 1})])
    emulator.state.faults.latency_ms = 1500
    stalled = await make_worker(lease=1)
    late = asyncio.create_task(stalled.cycle())
    await asyncio.sleep(1.2)  # the lease has expired; the first request is still out
    emulator.state.faults.latency_ms = 0
    delivered = settled("delivered")
    await drain(await make_worker())  # another worker takes the delivery and sends it
    await late
    await stalled.flush()

    assert await statuses(pool) == {"delivered": 1}
    assert await pool.fetchval("SELECT attempts FROM deliveries") == 1
    assert settled("delivered") - delivered == 1, "one delivery settled, counted once"
    # Braze received the user twice: both requests are in the audit log, the late one marked.
    attempts = await pool.fetch(
        "SELECT outcome, message, braze_request_id FROM delivery_attempts"
        " WHERE delivery_id = $1 ORDER BY id",
        delivery,
    )
    assert [a["outcome"] for a in attempts] == ["delivered", "delivered"]
    assert [a["message"] for a in attempts] == [None, LEASE_LOST]
    assert len({a["braze_request_id"] for a in attempts}) == 2
    lost = [r for r in warnings(caplog) if "taken by another worker" in r.getMessage()]
    assert len(lost) == 1
    assert lost[0].getMessage().startswith(f"1 deliveries ({delivery}) were taken")
    assert field(lost[0], "delivery_ids") == [delivery]
