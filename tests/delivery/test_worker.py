"""The worker against the Braze emulator over loopback, on a real Postgres."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from app.delivery.store import queue as queue_module
from tests.delivery.conftest import (
    Emulator,
    WorkerFactory,
    drain,
    enqueue,
    statuses,
)


def users(count: int, *, code: str = "CODE") -> list[tuple[str, dict[str, object]]]:
    return [(f"user-{n:05d}", {"voucher_code": f"{code}-{n}"}) for n in range(count)]


async def test_1000_updates_for_1000_users_take_exactly_14_requests(
    pool: asyncpg.Pool, emulator: Emulator, make_worker: WorkerFactory
) -> None:
    await enqueue(pool, users(1000))
    await drain(await make_worker())
    assert await statuses(pool) == {"delivered": 1000}
    requests = emulator.state.requests_snapshot()
    assert len(requests) == 14
    assert sum(r["object_count"] for r in requests) == 1000
    assert (
        emulator.state.profiles_snapshot()["external_id:user-00999"]["voucher_code"] == "CODE-999"
    )
    audited = await pool.fetchval("SELECT count(*) FROM braze_requests WHERE kind = 'delivered'")
    assert audited == 14


async def test_deliveries_of_one_user_are_coalesced_newest_event_wins(
    pool: asyncpg.Pool, emulator: Emulator, make_worker: WorkerFactory
) -> None:
    now = datetime.now(UTC)
    await enqueue(pool, [("mia", {"code": "NEW", "tier": "gold"})], event_time=now)
    await enqueue(
        pool, [("mia", {"code": "OLD", "points": 10})], event_time=now - timedelta(hours=1)
    )
    await drain(await make_worker())
    requests = emulator.state.requests_snapshot()
    assert len(requests) == 1 and requests[0]["object_count"] == 1
    profile = emulator.state.profiles_snapshot()["external_id:mia"]
    assert (profile["code"], profile["tier"], profile["points"]) == ("NEW", "gold", 10)
    assert await statuses(pool) == {"delivered": 2}


async def test_objects_braze_refuses_by_index_fail_and_the_rest_are_delivered(
    pool: asyncpg.Pool, emulator: Emulator, make_worker: WorkerFactory
) -> None:
    emulator.state.faults.object_errors = {"external_id:user-00003": "Invalid attribute value"}
    ids = await enqueue(pool, users(10))
    await drain(await make_worker())
    assert await statuses(pool) == {"delivered": 9, "failed": 1}
    failed = await pool.fetchrow("SELECT id, last_error FROM deliveries WHERE status = 'failed'")
    assert failed["id"] == ids[3]
    assert "Invalid attribute value" in failed["last_error"]


async def test_a_value_braze_refuses_fails_only_its_delivery_not_others_coalesced_with_it(
    pool: asyncpg.Pool, emulator: Emulator, make_worker: WorkerFactory
) -> None:
    # Two distributions for Mia, coalesced into one object; Braze refuses one's attribute.
    emulator.state.faults.attribute_errors = {"bad_attribute": "Invalid attribute value"}
    (good,) = await enqueue(pool, [("mia", {"code": "A"})])
    (bad,) = await enqueue(pool, [("mia", {"bad_attribute": "X"})])
    await drain(await make_worker())
    rows = {r["id"]: r for r in await pool.fetch("SELECT id, status, last_error FROM deliveries")}
    assert (rows[good]["status"], rows[bad]["status"]) == ("delivered", "failed")
    assert "Invalid attribute value" in rows[bad]["last_error"]
    assert emulator.state.profiles_snapshot()["external_id:mia"]["code"] == "A"
    split = await pool.fetchval(
        "SELECT count(*) FROM delivery_attempts WHERE outcome = 'split' AND delivery_id = $1", good
    )
    assert split == 1, "the refused request is in each delivery's audit trail"


async def test_a_400_without_indexes_is_bisected_until_the_bad_object_is_alone(
    pool: asyncpg.Pool, emulator: Emulator, make_worker: WorkerFactory
) -> None:
    ids = await enqueue(pool, users(4))
    # The batch of 4, then its first half, then that half's first object: each refused whole.
    emulator.state.faults.fail_next(3, status=400, message="Bad request")
    await drain(await make_worker())
    assert await statuses(pool) == {"delivered": 3, "failed": 1}
    assert await pool.fetchval("SELECT id FROM deliveries WHERE status = 'failed'") == ids[0]
    assert [r["object_count"] for r in emulator.state.requests_snapshot()] == [4, 2, 1, 1, 2]
    splits = await pool.fetchval("SELECT count(*) FROM delivery_attempts WHERE outcome = 'split'")
    assert splits == 4 + 2


async def test_413_splits_the_batch(
    pool: asyncpg.Pool, emulator: Emulator, make_worker: WorkerFactory
) -> None:
    await enqueue(pool, [(f"u{n}", {"blob": "x" * 200}) for n in range(8)])
    emulator.state.faults.max_body_bytes = 1200  # 8 objects do not fit, 4 do
    await drain(await make_worker())
    assert await statuses(pool) == {"delivered": 8}
    assert [r["status"] for r in emulator.state.requests_snapshot()][:1] == [413]
    assert len(emulator.state.profiles_snapshot()) == 8


async def test_429_waits_for_retry_after_and_uses_no_attempt(
    pool: asyncpg.Pool, emulator: Emulator, make_worker: WorkerFactory
) -> None:
    await enqueue(pool, users(3))
    emulator.state.faults.fail_next(1, status=429, retry_after=1)
    worker = await make_worker()
    started = asyncio.get_running_loop().time()
    await drain(worker)
    assert asyncio.get_running_loop().time() - started >= 0.9
    assert await statuses(pool) == {"delivered": 3}
    # Only the successful try counts: the 429 was not the delivery's fault.
    assert await pool.fetchval("SELECT max(attempts) FROM deliveries") == 1
    assert (
        await pool.fetchval("SELECT count(*) FROM delivery_attempts WHERE outcome = 'rate_limited'")
        == 3
    )


async def test_a_503_with_retry_after_pauses_every_lane_until_then(
    pool: asyncpg.Pool, emulator: Emulator, make_worker: WorkerFactory
) -> None:
    await enqueue(pool, users(3))
    emulator.state.faults.fail_next(1, status=503, headers={"Retry-After": "1"})
    worker = await make_worker(schedule="0.05s")
    started = asyncio.get_running_loop().time()
    await drain(worker)
    # The schedule alone would have retried after 50 ms.
    assert asyncio.get_running_loop().time() - started >= 0.9
    assert await statuses(pool) == {"delivered": 3}
    assert len(emulator.state.requests_snapshot()) == 2


async def test_5xx_is_retried_until_delivered(
    pool: asyncpg.Pool, emulator: Emulator, make_worker: WorkerFactory
) -> None:
    await enqueue(pool, users(2))
    emulator.state.faults.fail_next(2, status=503)
    await drain(await make_worker())
    assert await statuses(pool) == {"delivered": 2}
    assert await pool.fetchval("SELECT max(attempts) FROM deliveries") == 3
    outcomes = await pool.fetch(
        "SELECT outcome FROM delivery_attempts WHERE delivery_id = (SELECT min(id) FROM deliveries)"
        " ORDER BY id"
    )
    assert [r["outcome"] for r in outcomes] == ["retry", "retry", "delivered"]


async def test_retries_exhausted_end_dead(
    pool: asyncpg.Pool, emulator: Emulator, make_worker: WorkerFactory
) -> None:
    await enqueue(pool, users(1))
    emulator.state.faults.fail_next(10, status=500)
    await drain(await make_worker(schedule="0.05s,0.05s"))
    assert await statuses(pool) == {"dead": 1}
    assert len(emulator.state.requests_snapshot()) == 3


async def test_timeouts_are_retried(
    pool: asyncpg.Pool, emulator: Emulator, make_worker: WorkerFactory
) -> None:
    await enqueue(pool, users(1))
    emulator.state.faults.latency_ms = 1500
    worker = await make_worker(braze_timeout=0.5)
    await worker.cycle()
    emulator.state.faults.latency_ms = 0
    await drain(worker)
    assert await statuses(pool) == {"delivered": 1}
    assert await pool.fetchval("SELECT attempts FROM deliveries") == 2


async def test_a_worker_killed_mid_batch_loses_nothing(
    pool: asyncpg.Pool, emulator: Emulator, make_worker: WorkerFactory
) -> None:
    await enqueue(pool, users(5))
    emulator.state.faults.latency_ms = 3000
    doomed = await make_worker(lease=1)
    task = asyncio.create_task(doomed.cycle())
    await asyncio.sleep(0.5)
    task.cancel()  # like SIGKILL: no cleanup, the leases stay
    await asyncio.gather(task, return_exceptions=True)
    assert await statuses(pool) == {"in_flight": 5}

    emulator.state.faults.latency_ms = 0
    survivor = await make_worker(lease=1)
    assert await survivor.cycle() == 0, "the lease has not expired yet"
    await asyncio.sleep(1.1)
    await drain(survivor)
    assert await statuses(pool) == {"delivered": 5}


async def test_two_workers_never_send_the_same_delivery(
    pool: asyncpg.Pool, emulator: Emulator, make_worker: WorkerFactory
) -> None:
    # Three deliveries per user, enqueued separately, so that claims could interleave.
    for round_ in range(3):
        await enqueue(pool, users(300, code=f"R{round_}"))
    emulator.state.faults.latency_ms = 20
    first, second = await make_worker(concurrency=3), await make_worker(concurrency=3)
    stop = asyncio.Event()
    runs = [asyncio.create_task(w.run(stop)) for w in (first, second)]
    for _ in range(200):
        if await statuses(pool) == {"delivered": 900}:
            break
        await asyncio.sleep(0.1)
    stop.set()
    await asyncio.gather(*runs)
    assert await statuses(pool) == {"delivered": 900}
    sent = await pool.fetchval("SELECT count(*) FROM delivery_attempts WHERE outcome = 'delivered'")
    assert sent == 900, "each delivery is delivered exactly once"
    # A user in two concurrent requests would reach Braze twice while only one send is
    # recorded: every object Braze received must be one recorded (request, user) pair.
    recorded = await pool.fetchval(
        "SELECT count(DISTINCT (a.braze_request_id, d.braze_user_key)) FROM delivery_attempts a"
        " JOIN deliveries d ON d.id = a.delivery_id WHERE a.outcome = 'delivered'"
    )
    received = sum(r["object_count"] for r in emulator.state.requests_snapshot())
    assert received == recorded
    assert first.stats.requests > 0 and second.stats.requests > 0


async def test_an_unchanged_value_is_not_sent_again(
    pool: asyncpg.Pool, emulator: Emulator, make_worker: WorkerFactory
) -> None:
    worker = await make_worker()
    await enqueue(pool, [("mia", {"code": "A", "tier": "gold"})])
    await drain(worker)
    await enqueue(pool, [("mia", {"code": "A", "tier": "gold"})])
    await enqueue(pool, [("leo", {"code": "B"})])
    await drain(worker)
    assert [r["object_count"] for r in emulator.state.requests_snapshot()] == [1, 1]
    skipped = await pool.fetchrow("SELECT skip_reason FROM deliveries WHERE status = 'skipped'")
    assert skipped["skip_reason"] == "unchanged"
    assert worker.stats.data_points_saved == 2


async def test_force_sends_an_unchanged_value(
    pool: asyncpg.Pool, emulator: Emulator, make_worker: WorkerFactory
) -> None:
    worker = await make_worker()
    await enqueue(pool, [("mia", {"code": "A"})])
    await drain(worker)
    await enqueue(pool, [("mia", {"code": "A"})], force=True)
    await drain(worker)
    assert len(emulator.state.requests_snapshot()) == 2
    assert await statuses(pool) == {"delivered": 2}


async def test_a_stale_event_does_not_overwrite_a_newer_value(
    pool: asyncpg.Pool, emulator: Emulator, make_worker: WorkerFactory
) -> None:
    worker = await make_worker()
    now = datetime.now(UTC)
    await enqueue(pool, [("mia", {"code": "NEW"})], event_time=now)
    await drain(worker)
    await enqueue(pool, [("mia", {"code": "OLD"})], event_time=now - timedelta(minutes=5))
    await drain(worker)
    assert emulator.state.profiles_snapshot()["external_id:mia"]["code"] == "NEW"
    assert len(emulator.state.requests_snapshot()) == 1
    stale = await pool.fetchrow("SELECT skip_reason FROM deliveries WHERE status = 'skipped'")
    assert stale["skip_reason"] == "stale"


async def test_a_401_stops_sending_and_it_resumes_without_loss(
    pool: asyncpg.Pool, emulator: Emulator, make_worker: WorkerFactory
) -> None:
    await enqueue(pool, users(150))
    emulator.state.faults.fail_next(3, status=401, message="Invalid API key")
    worker = await make_worker(probe=0.3)
    await worker.cycle()
    state = await worker.gate.state()
    assert state.blocked_reason is not None and "401" in state.blocked_reason
    assert await worker.cycle() == 0, "blocked: no claim until the next probe"
    await drain(worker)
    assert await statuses(pool) == {"delivered": 150}
    assert (await worker.gate.state()).blocked_reason is None
    # The refused tries were not the deliveries' fault: only the successful one counts.
    assert await pool.fetchval("SELECT max(attempts) FROM deliveries") == 1
    # Three refused probes (one batch each), then the two batches of the 150 users.
    assert [r["status"] for r in emulator.state.requests_snapshot()] == [401, 401, 401, 201, 201]


async def test_the_braze_key_never_reaches_the_audit_rows(
    pool: asyncpg.Pool, emulator: Emulator, make_worker: WorkerFactory
) -> None:
    from tests.delivery.conftest import BRAZE_KEY

    await enqueue(pool, users(3))
    emulator.state.faults.fail_next(1, status=401, message=f"bad key {BRAZE_KEY}")
    await drain(await make_worker(probe=0.1))
    rows = await pool.fetch(
        "SELECT row_to_json(r)::text AS t FROM braze_requests r"
        " UNION ALL SELECT row_to_json(a)::text FROM delivery_attempts a"
        " UNION ALL SELECT row_to_json(g)::text FROM braze_gate g"
    )
    assert rows and not any(BRAZE_KEY in row["t"] for row in rows)


async def test_a_prefetched_batch_past_half_its_lease_is_given_back_not_sent(
    pool: asyncpg.Pool, emulator: Emulator, make_worker: WorkerFactory
) -> None:
    # Two batches of 75 users and a 3 s lease. The first worker sends the first batch (2 s)
    # while it holds the second, prefetched: by its turn, more than half of that lease is
    # gone. Sent anyway, its call would outlive the lease, and a second worker starting at
    # 3.4 s would take the same users while they are in flight (each reaching Braze twice).
    # Given back and claimed again, it is sent on a fresh lease the second worker respects.
    await enqueue(pool, users(150))
    emulator.state.faults.latency_ms = 2000
    first, second = await make_worker(lease=3.0), await make_worker(lease=3.0)
    stop = asyncio.Event()
    running = [asyncio.create_task(first.run(stop))]
    await asyncio.sleep(3.4)
    running.append(asyncio.create_task(second.run(stop)))
    for _ in range(100):
        if await statuses(pool) == {"delivered": 150}:
            break
        await asyncio.sleep(0.1)
    stop.set()
    await asyncio.gather(*running)
    assert await statuses(pool) == {"delivered": 150}
    received = emulator.state.requests_snapshot()
    assert sum(r["object_count"] for r in received) == 150, "each user reached Braze once"


async def test_after_a_send_with_an_unknown_outcome_a_repeated_value_is_sent_again(
    pool: asyncpg.Pool, emulator: Emulator, make_worker: WorkerFactory
) -> None:
    # "A" is delivered. "B" then fails with a 500: Braze may have applied it, or not. A newer
    # event brings "A" back before B's retry is due: it must be sent (Braze may hold "B"),
    # not left out as unchanged; B's retry is then older than what Braze has, and is stale.
    worker = await make_worker(schedule="30s")
    now = datetime.now(UTC)
    await enqueue(pool, [("mia", {"code": "A"})], event_time=now - timedelta(minutes=2))
    await drain(worker)
    emulator.state.faults.error_rate = 1.0
    await enqueue(pool, [("mia", {"code": "B"})], event_time=now - timedelta(minutes=1))
    assert await worker.cycle() == 1
    uncertain = await pool.fetchval("SELECT uncertain FROM attribute_state")
    assert uncertain is True
    emulator.state.faults.error_rate = 0.0
    await enqueue(pool, [("mia", {"code": "A"})], event_time=now)
    assert await worker.cycle() == 1

    received = [r for r in emulator.state.requests_snapshot() if r["status"] < 300]
    assert [r["object_count"] for r in received] == [1, 1], "the repeated A was sent"
    state = await pool.fetchrow("SELECT value, uncertain FROM attribute_state")
    assert (state["value"], state["uncertain"]) == ("A", False)


async def test_the_end_of_a_braze_outage_sends_what_waits_on_a_retry_at_once(
    pool: asyncpg.Pool, emulator: Emulator, make_worker: WorkerFactory
) -> None:
    """Two requests in a row fail (an outage); the first success, by any worker, makes what
    failed during the outage due now instead of at its next retry an hour later."""
    failing, recovering = await make_worker(schedule="1h,1h"), await make_worker(schedule="1h,1h")
    emulator.state.faults.fail_next(2, status=503)
    await enqueue(pool, users(3, code="A"))
    assert await failing.cycle() == 3
    await enqueue(pool, [("late-1", {"voucher_code": "L1"})])
    assert await failing.cycle() == 1
    waiting = await pool.fetchval(
        "SELECT count(*) FROM deliveries WHERE next_attempt_at > now() + interval '30 minutes'"
    )
    assert waiting == 4

    await enqueue(pool, [("late-2", {"voucher_code": "L2"})])
    assert await recovering.cycle() == 1
    await drain(recovering, within=10)
    assert await statuses(pool) == {"delivered": 5}
    profiles = emulator.state.profiles_snapshot()
    assert profiles["external_id:user-00002"]["voucher_code"] == "A-2"
    assert profiles["external_id:late-1"]["voucher_code"] == "L1"
    assert len(emulator.state.requests_snapshot()) == 4  # 2 failed, 1, then the 4 together
    gate = await pool.fetchrow("SELECT failing_since, failed_requests FROM braze_gate")
    assert (gate["failing_since"], gate["failed_requests"]) == (None, 0)


async def test_a_quiet_outage_is_probed_and_its_end_noticed_without_waiting_for_a_retry(
    pool: asyncpg.Pool, emulator: Emulator, make_worker: WorkerFactory
) -> None:
    """Nothing new arrives and every retry is an hour away: one waiting retry is tried every
    probe interval; a failed probe uses no try, the first that succeeds sends the rest."""
    worker = await make_worker(schedule="1h,1h", probe=0.6)  # margin for a slow machine
    emulator.state.faults.fail_next(3, status=503)  # the outage: two requests, then one probe
    await enqueue(pool, users(3, code="A"))
    assert await worker.cycle() == 3
    await enqueue(pool, [("late-1", {"voucher_code": "L1"})])
    assert await worker.cycle() == 1
    retries = "SELECT id, attempts, next_attempt_at FROM deliveries ORDER BY id"
    before = [tuple(r) for r in await pool.fetch(retries)]
    assert await worker.cycle() == 0, "the first probe waits a probe interval"

    await asyncio.sleep(0.65)
    assert await worker.cycle() == 1  # a probe: the earliest retry, and Braze fails it
    assert await worker.cycle() == 0, "one probe per interval"
    assert [tuple(r) for r in await pool.fetch(retries)] == before  # no try used, same time
    probe = await pool.fetchrow(
        "SELECT outcome, message FROM delivery_attempts ORDER BY id DESC LIMIT 1"
    )
    assert probe["outcome"] == "retry"
    assert probe["message"].endswith("(an outage probe: no try used)")

    await asyncio.sleep(0.65)
    assert await worker.cycle() == 1  # Braze answers: the outage is over
    await drain(worker, within=10)
    assert await statuses(pool) == {"delivered": 4}
    assert len(emulator.state.requests_snapshot()) == 5  # 2 failed, a failed probe, 1, then 3


async def test_a_probe_whose_user_is_busy_puts_the_retry_back_for_later(
    pool: asyncpg.Pool, emulator: Emulator, make_worker: WorkerFactory
) -> None:
    worker = await make_worker(schedule="1h,1h", probe=0.2)
    emulator.state.faults.fail_next(2, status=503)
    [first] = await enqueue(pool, [("busy-user", {"voucher_code": "B1"})])
    assert await worker.cycle() == 1
    await enqueue(pool, [("other", {"voucher_code": "O"})])
    assert await worker.cycle() == 1  # the second failed request: an outage
    # The earliest retry, whatever the jitter drew for each request: the one the probe takes.
    retry = await pool.fetchval(
        "UPDATE deliveries SET next_attempt_at = now() + interval '30 minutes' WHERE id = $1"
        " RETURNING next_attempt_at",
        first,
    )
    # Another worker is sending to the same user right now.
    [sending] = await enqueue(pool, [("busy-user", {"voucher_code": "B2"})])
    await pool.execute(
        "UPDATE deliveries SET status = 'in_flight', leased_by = 'elsewhere',"
        " lease_expires_at = now() + interval '1 minute' WHERE id = $1",
        sending,
    )
    await asyncio.sleep(0.25)
    assert await worker.cycle() == 0  # the probe finds its user busy: nothing goes out
    assert (
        await pool.fetchval("SELECT next_attempt_at FROM deliveries WHERE id = $1", first) == retry
    ), "put back: not sent later as an ordinary (counted) try"


async def test_one_failed_request_alone_is_a_blip_that_hurries_nothing(
    pool: asyncpg.Pool, emulator: Emulator, make_worker: WorkerFactory
) -> None:
    worker = await make_worker(schedule="1h,1h")
    emulator.state.faults.fail_next(1, status=503)
    await enqueue(pool, users(3))
    assert await worker.cycle() == 3
    await asyncio.sleep(0.25)  # a probe interval: one failed request is no outage to probe
    assert await worker.cycle() == 0
    await enqueue(pool, [("next", {"voucher_code": "N"})])
    assert await worker.cycle() == 1
    assert await statuses(pool) == {"pending": 3, "delivered": 1}
    waiting = await pool.fetchval(
        "SELECT count(*) FROM deliveries WHERE next_attempt_at > now() + interval '30 minutes'"
    )
    assert waiting == 3


async def test_retries_are_hurried_in_batches_until_none_is_left(
    pool: asyncpg.Pool, make_worker: WorkerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queue_module, "HURRY_BATCH", 2)
    worker = await make_worker()
    ids = await enqueue(pool, users(5))
    before = await pool.fetchval("SELECT clock_timestamp()")
    await pool.execute(
        "UPDATE deliveries SET attempts = 1, next_attempt_at = now() + interval '1 hour',"
        " updated_at = clock_timestamp()"
    )
    # Failed before the outage began: keeps its schedule.
    await pool.execute(
        "UPDATE deliveries SET updated_at = $2::timestamptz - interval '1 minute' WHERE id = $1",
        ids[0],
        before,
    )
    assert await worker.queue.hurry_retries(failed_since=before) == 4
    due = await pool.fetchval("SELECT count(*) FROM deliveries WHERE next_attempt_at <= now()")
    assert due == 4
