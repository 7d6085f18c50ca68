"""A run whose audience cannot be listed because Voucherify is unavailable: it waits longer
after each failure in a row, shows it, gives up after RUN_MAX_FAILURES, and can be resumed."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import httpx

from app.sandbox.voucherify.faults import Faults, Refusal, error_body
from tests.conftest import READER, WRITER
from tests.runs.conftest import (
    SEGMENT,
    RelayFactory,
    Voucherify,
    add_distribution,
    finish,
    run_status,
    segment_run,
    start_run,
)
from tests.voucherify.fakes import FakeClock


class Outage(Faults):
    """503 for the API requests whose numbers are in `failing` (1: the first from now on)."""

    def __init__(self, failing: set[int]) -> None:
        super().__init__()
        self.failing = failing
        self.served = 0

    def next_failure(self) -> Refusal | None:
        self.served += 1
        if self.served in self.failing:
            return Refusal(503, {}, error_body(503), fault="outage")
        return super().next_failure()


def requests(first: int, last: int) -> set[int]:
    return set(range(first, last + 1))


async def expire_lease(pool: asyncpg.Pool) -> None:
    """Time passes: the run's wait is over."""
    await pool.execute("UPDATE runs SET lease_expires_at = now() - interval '1 second'")


def waits(run: dict[str, object]) -> float:
    assert isinstance(run["next_try_at"], str)
    return (datetime.fromisoformat(run["next_try_at"]) - datetime.now(UTC)).total_seconds()


async def test_voucherify_unavailable_makes_a_run_wait_longer_each_time_then_fail(
    committing_client: httpx.AsyncClient, make_relay: RelayFactory, voucherify: Voucherify,
    pool: asyncpg.Pool,
) -> None:  # fmt: skip
    _, run = await segment_run(committing_client, voucherify, 3)
    voucherify.state.faults.fail_next(1000, status=503)
    clock = FakeClock()  # the client's own retries within a try do not take real time
    relay = await make_relay(clock=clock, sleep=clock.sleep, max_failures=3)

    assert await relay.executor.cycle() is True
    shown = await run_status(committing_client, run["id"])
    assert (shown["status"], shown["failures"]) == ("running", 1)
    assert 25 < waits(shown) <= 30
    assert "Voucherify unavailable: 1 of 3 tries" in shown["error"]
    assert await relay.executor.cycle() is False  # not due before next_try_at

    await expire_lease(pool)
    assert await relay.executor.cycle() is True
    shown = await run_status(committing_client, run["id"])
    assert (shown["status"], shown["failures"]) == ("running", 2)
    assert 55 < waits(shown) <= 60  # twice as long

    await expire_lease(pool)
    assert await relay.executor.cycle() is True
    shown = await run_status(committing_client, run["id"])
    assert (shown["status"], shown["failures"], shown["next_try_at"]) == ("failed", 3, None)
    assert shown["finished_at"] is not None
    assert "Voucherify was unavailable 3 times in a row" in shown["error"]
    assert "503" in shown["error"] and f"/api/v1/runs/{run['id']}/resume" in shown["error"]
    await expire_lease(pool)
    assert await relay.executor.cycle() is False  # a failed run is not tried again
    assert await pool.fetchval("SELECT count(*) FROM deliveries") == 0


async def test_a_stored_page_starts_the_failure_count_again(
    committing_client: httpx.AsyncClient, make_relay: RelayFactory, voucherify: Voucherify,
    pool: asyncpg.Pool,
) -> None:  # fmt: skip
    _, run = await segment_run(committing_client, voucherify, 5)
    # Each call is tried 4 times. First try: the count fails. Second: the count and the first
    # page answer, the second page fails.
    voucherify.state.faults = Outage(requests(1, 4) | requests(7, 10))
    clock = FakeClock()
    relay = await make_relay(clock=clock, sleep=clock.sleep, max_failures=2, page_size=2)

    await relay.executor.cycle()
    assert (await run_status(committing_client, run["id"]))["failures"] == 1
    await expire_lease(pool)
    await relay.executor.cycle()
    shown = await run_status(committing_client, run["id"])
    assert (shown["status"], shown["failures"]) == ("running", 1)  # not 2: a page was stored
    assert shown["progress"]["processed"] == 2

    await expire_lease(pool)
    shown = await finish(relay, committing_client, run["id"])
    assert (shown["status"], shown["failures"], shown["error"]) == ("done", 0, None)
    assert shown["progress"]["delivered"] == 5


async def test_a_run_that_gave_up_resumes_from_its_checkpoint_without_a_second_delivery(
    committing_client: httpx.AsyncClient, make_relay: RelayFactory, voucherify: Voucherify,
    pool: asyncpg.Pool,
) -> None:  # fmt: skip
    customers = voucherify.segment(5)
    distribution_id = await add_distribution(committing_client)
    run = await start_run(committing_client, distribution_id, {"segment_id": SEGMENT})
    voucherify.state.faults = Outage(requests(3, 6))  # the count and page 1 answer; page 2 not
    clock = FakeClock()
    relay = await make_relay(clock=clock, sleep=clock.sleep, max_failures=1, page_size=2)
    await relay.executor.cycle()
    failed = await run_status(committing_client, run["id"])
    assert (failed["status"], failed["failures"]) == ("failed", 1)
    assert (failed["resumed_at"], failed["resumed_by"], failed["resumes"]) == (None, None, 0)
    assert failed["progress"]["processed"] == 2
    url = f"/api/v1/runs/{run['id']}/resume"

    assert (await committing_client.post(url, headers=READER)).status_code == 403
    await committing_client.post(f"/api/v1/distributions/{distribution_id}/pause", headers=WRITER)
    paused = await committing_client.post(url, headers=WRITER)
    assert paused.status_code == 409 and "resume it first" in paused.json()["error"]["message"]
    await committing_client.post(f"/api/v1/distributions/{distribution_id}/resume", headers=WRITER)

    resumed = await committing_client.post(url, headers=WRITER)
    assert resumed.status_code == 200, resumed.text
    shown = resumed.json()
    assert (shown["status"], shown["failures"], shown["error"]) == ("running", 0, None)
    assert shown["finished_at"] is None
    assert (shown["resumed_by"], shown["resumes"]) == ("ops-team", 1)
    assert shown["resumed_at"] is not None
    assert (await committing_client.post(url, headers=WRITER)).status_code == 409  # running now

    listed_before = len(voucherify.listings())
    shown = await finish(relay, committing_client, run["id"])
    assert shown["status"] == "done"
    assert shown["progress"]["processed"] == 5 and shown["progress"]["delivered"] == 5
    assert "starting_after" in voucherify.listings()[listed_before]["query"]  # from the checkpoint
    rows = await pool.fetch("SELECT run_member FROM deliveries WHERE run_id = $1", run["id"])
    assert sorted(r["run_member"] for r in rows) == sorted(c.id for c in customers)
    publications = voucherify.state.publications_snapshot()
    assert sorted(p["customer_id"] for p in publications) == sorted(c.id for c in customers)


async def test_only_a_run_that_gave_up_on_voucherify_can_be_resumed(
    committing_client: httpx.AsyncClient, make_relay: RelayFactory, voucherify: Voucherify,
) -> None:  # fmt: skip
    distribution_id = await add_distribution(committing_client)
    scheduled = await start_run(
        committing_client, distribution_id, {"segment_id": SEGMENT}, delay_seconds=3600
    )
    refused = await committing_client.post(f"/api/v1/runs/{scheduled['id']}/resume", headers=WRITER)
    assert refused.status_code == 409 and "is scheduled" in refused.json()["error"]["message"]
    await committing_client.post(f"/api/v1/runs/{scheduled['id']}/cancel", headers=WRITER)

    unknown = await start_run(committing_client, distribution_id, {"segment_id": "seg_missing"})
    failed = await finish(await make_relay(), committing_client, unknown["id"])
    assert (failed["status"], failed["failures"]) == ("failed", 0)
    refused = await committing_client.post(f"/api/v1/runs/{unknown['id']}/resume", headers=WRITER)
    assert refused.status_code == 409 and "failed for good" in refused.json()["error"]["message"]

    missing = await committing_client.post("/api/v1/runs/999999/resume", headers=WRITER)
    assert missing.status_code == 404


async def test_a_long_429_wait_postpones_the_run_that_long_and_is_no_failure(
    committing_client: httpx.AsyncClient, make_relay: RelayFactory, voucherify: Voucherify,
    pool: asyncpg.Pool,
) -> None:  # fmt: skip
    _, run = await segment_run(committing_client, voucherify, 5)
    # Voucherify's quota is spent: come back in an hour (longer than the client sleeps).
    voucherify.state.faults.fail_next(2, status=429, retry_after=3600)
    clock = FakeClock()
    relay = await make_relay(clock=clock, sleep=clock.sleep, max_failures=1)

    assert await relay.executor.cycle() is True
    shown = await run_status(committing_client, run["id"])
    assert (shown["status"], shown["failures"]) == ("running", 0)  # max_failures=1: not failed
    assert 3590 < waits(shown) <= 3600
    assert "Voucherify rate limited: waiting 3600 s" in shown["error"], shown["error"]
    assert "asking to wait 3600 s" in shown["error"], shown["error"]
    assert clock.sleeps == [], "the client must not sleep the hour away holding the lease"
    assert await relay.executor.cycle() is False  # not due before next_try_at

    # Another worker's client asks again and is told the same: still no failure.
    other = await make_relay(clock=clock, sleep=clock.sleep, max_failures=1)
    await expire_lease(pool)
    assert await other.executor.cycle() is True
    shown = await run_status(committing_client, run["id"])
    assert (shown["status"], shown["failures"]) == ("running", 0)
    assert 3590 < waits(shown) <= 3600

    clock.now += 3600  # the hour is over
    await expire_lease(pool)
    shown = await finish(relay, committing_client, run["id"])
    assert (shown["status"], shown["failures"], shown["error"]) == ("done", 0, None)
    assert shown["progress"]["delivered"] == 5


async def test_a_client_that_was_told_to_wait_sends_nothing_until_then(
    committing_client: httpx.AsyncClient, make_relay: RelayFactory, voucherify: Voucherify,
    pool: asyncpg.Pool,
) -> None:  # fmt: skip
    _, run = await segment_run(committing_client, voucherify, 3)
    voucherify.state.faults.fail_next(1, status=429, retry_after=3600)
    clock = FakeClock()
    relay = await make_relay(clock=clock, sleep=clock.sleep, max_failures=1)
    await relay.executor.cycle()
    sent = len(voucherify.state.requests_snapshot())

    clock.now += 600  # ten minutes on, the same worker tries again
    await expire_lease(pool)
    assert await relay.executor.cycle() is True
    assert len(voucherify.state.requests_snapshot()) == sent, "a request spent on a known 429"
    shown = await run_status(committing_client, run["id"])
    assert (shown["status"], shown["failures"]) == ("running", 0)
    assert 2990 < waits(shown) <= 3000  # what is left of Voucherify's hour

    clock.now += 3000
    await expire_lease(pool)
    shown = await finish(relay, committing_client, run["id"])
    assert shown["status"] == "done" and shown["progress"]["delivered"] == 3
