"""attribute_state keeps Braze's values right when sends fail, are retried or go unrecorded.

Both cases were found by `make soak` (bench/soak.py): users whose final value at Braze was an
older event's, because a value repeated by a newer event was left out as unchanged.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from app.delivery.coalesce import UserUpdate
from app.delivery.outcomes import DeliveryChange
from app.delivery.worker import Worker
from tests.delivery.conftest import Emulator, WorkerFactory, drain, enqueue

NOW = datetime.now(UTC)


def _amount(emulator: Emulator) -> object:
    return emulator.state.profiles_snapshot()["external_id:mia"]["amount"]


async def test_a_retried_older_event_does_not_overwrite_a_value_a_newer_event_repeated(
    pool: asyncpg.Pool, emulator: Emulator, make_worker: WorkerFactory
) -> None:
    worker = await make_worker(schedule="1h")
    await enqueue(pool, [("mia", {"amount": 4497})], event_time=NOW - timedelta(minutes=3))
    await drain(worker)
    emulator.state.faults.fail_next(1, status=500)
    (middle,) = await enqueue(
        pool, [("mia", {"amount": 1999})], event_time=NOW - timedelta(minutes=2)
    )
    await worker.cycle()  # 500: retried in an hour
    await enqueue(pool, [("mia", {"amount": 4497})], event_time=NOW - timedelta(minutes=1))
    await worker.cycle()  # Braze has 4497 already: left out as unchanged

    await pool.execute("UPDATE deliveries SET next_attempt_at = now() WHERE id = $1", middle)
    await drain(worker)
    assert _amount(emulator) == 4497
    row = await pool.fetchrow("SELECT status, skip_reason FROM deliveries WHERE id = $1", middle)
    assert (row["status"], row["skip_reason"]) == ("skipped", "stale")


async def _unrecorded_send(pool: asyncpg.Pool, emulator: Emulator, worker: Worker) -> int:
    """4497 delivered, then 1999 reached Braze but its worker was SIGKILLed before recording
    the answer: the delivery in flight under an expired lease, attribute_state as before the
    send. Returns the unrecorded delivery."""
    first = NOW - timedelta(minutes=3)
    await enqueue(pool, [("mia", {"amount": 4497})], event_time=first)
    await drain(worker)
    (middle,) = await enqueue(
        pool, [("mia", {"amount": 1999})], event_time=NOW - timedelta(minutes=2)
    )
    await drain(worker)
    assert _amount(emulator) == 1999
    await pool.execute(
        "UPDATE deliveries SET status = 'in_flight', leased_by = 'killed',"
        " lease_expires_at = now() - interval '1 second', delivered_at = NULL WHERE id = $1",
        middle,
    )
    await pool.execute(
        "UPDATE attribute_state SET value = '4497', event_time = $1 WHERE attribute = 'amount'",
        first,
    )
    return middle


async def test_after_an_unrecorded_send_a_repeated_value_is_sent_again(
    pool: asyncpg.Pool, emulator: Emulator, make_worker: WorkerFactory
) -> None:
    worker = await make_worker()
    await _unrecorded_send(pool, emulator, worker)

    await enqueue(pool, [("mia", {"amount": 4497})], event_time=NOW - timedelta(minutes=1))
    await drain(worker)
    assert _amount(emulator) == 4497


async def test_a_lease_taken_back_keeps_its_doubt_when_the_next_claim_sends_nothing(
    pool: asyncpg.Pool, emulator: Emulator, make_worker: WorkerFactory
) -> None:
    worker = await make_worker()
    middle = await _unrecorded_send(pool, emulator, worker)
    # Another worker takes the delivery back, and its claim never reaches Braze (the gate
    # held it, say).
    taker = await make_worker()
    claimed, _ = await taker.queue.claim(users=75)
    assert [d.id for d in claimed.deliveries] == [middle]
    await taker.queue.release([middle])
    await pool.execute("UPDATE deliveries SET status = 'skipped' WHERE id = $1", middle)

    await enqueue(pool, [("mia", {"amount": 4497})], event_time=NOW - timedelta(minutes=1))
    await drain(worker)
    assert _amount(emulator) == 4497


async def test_an_older_event_is_not_sent_over_a_send_whose_outcome_is_unknown(
    pool: asyncpg.Pool, emulator: Emulator, make_worker: WorkerFactory
) -> None:
    # Mia's first value: no attribute_state row exists before the 500.
    worker = await make_worker(schedule="1h")
    emulator.state.faults.fail_next(1, status=500)
    (newer,) = await enqueue(pool, [("mia", {"amount": 1999})], event_time=NOW)
    assert await worker.cycle() == 1  # 500: Braze may have applied 1999, or not
    (older,) = await enqueue(
        pool, [("mia", {"amount": 4497})], event_time=NOW - timedelta(minutes=1)
    )
    await worker.cycle()
    row = await pool.fetchrow("SELECT status, skip_reason FROM deliveries WHERE id = $1", older)
    assert (row["status"], row["skip_reason"]) == ("skipped", "stale")
    applied = [r for r in emulator.state.requests_snapshot() if r["status"] < 300]
    assert applied == [], "the older value went to Braze over a newer one it may hold"

    await pool.execute("UPDATE deliveries SET next_attempt_at = now() WHERE id = $1", newer)
    await drain(worker)
    assert _amount(emulator) == 1999
    state = await pool.fetchrow("SELECT uncertain, doubt_event_time FROM attribute_state")
    assert (state["uncertain"], state["doubt_event_time"]) == (False, None)


async def test_a_value_accepted_longer_ago_than_the_trust_period_is_sent_again(
    pool: asyncpg.Pool, emulator: Emulator, make_worker: WorkerFactory
) -> None:
    worker = await make_worker()
    await enqueue(pool, [("mia", {"amount": 4497})], event_time=NOW - timedelta(minutes=1))
    await drain(worker)
    # Someone edited Mia's profile in the Braze dashboard meanwhile.
    emulator.state.profiles["external_id:mia"]["amount"] = 0
    await pool.execute("UPDATE attribute_state SET sent_at = now() - interval '8 days'")
    await enqueue(pool, [("mia", {"amount": 4497})], event_time=NOW)
    await drain(worker)
    assert _amount(emulator) == 4497
    sent_at = await pool.fetchval("SELECT now() - sent_at FROM attribute_state")
    assert sent_at < timedelta(minutes=1)


async def test_a_value_without_an_event_time_keeps_the_recorded_time(
    pool: asyncpg.Pool, emulator: Emulator, make_worker: WorkerFactory
) -> None:
    """Through the worker: coalescing records an untimed value at the time already known, so an
    older event that comes next is still refused (issue 15)."""
    worker = await make_worker()
    known = NOW - timedelta(minutes=1)
    await enqueue(pool, [("mia", {"amount": 1})], event_time=known)
    await drain(worker)
    (untimed,) = await enqueue(pool, [("mia", {"amount": 2})])
    await pool.execute("UPDATE deliveries SET event_time = NULL WHERE id = $1", untimed)
    await drain(worker)
    assert _amount(emulator) == 2
    assert await pool.fetchval("SELECT event_time FROM attribute_state") == known

    (older,) = await enqueue(pool, [("mia", {"amount": 3})], event_time=known - timedelta(hours=1))
    await drain(worker)
    assert _amount(emulator) == 2
    assert await pool.fetchval("SELECT skip_reason FROM deliveries WHERE id = $1", older) == "stale"


async def test_recording_a_value_without_an_event_time_never_clears_the_recorded_one(
    pool: asyncpg.Pool, make_worker: WorkerFactory
) -> None:
    """The statement itself, for any caller that hands it no time (a row coalescing did not see,
    say): the value is Braze's now, the known time must stay."""
    worker = await make_worker()
    known = NOW - timedelta(minutes=1)
    (first,) = await enqueue(pool, [("mia", {"amount": 1})], event_time=known)
    await drain(worker)
    update = UserUpdate("external_id:mia", {"external_id": "mia", "amount": 2}, [first],
                        {"amount": (None, first)})  # fmt: skip
    await worker.queue.record(
        call=None, started_at=NOW, changes=[DeliveryChange(first, "delivered", "delivered")],
        updates=[update], omitted={},
    )  # fmt: skip
    row = await pool.fetchrow("SELECT value, event_time FROM attribute_state")
    assert (row["value"], row["event_time"]) == (2, known)
