"""Bulk replays run by the worker: the whole filter in batches, exactly once, cancelable, and
resumed by another worker after a crash."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.delivery.store.hold import tend
from app.ops.bulk_replay import BatchHook, ReplayRunner
from app.worker.lanes import QueueLanes
from tests.conftest import READER, WRITER
from tests.delivery.conftest import Emulator, WorkerFactory, drain, statuses
from tests.ops.replay_data import create_distribution, settled_delivery, stored_event


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def runner(
    sessions: async_sessionmaker[AsyncSession], *, batch: int = 100,
    after_batch: BatchHook | None = None, max_batch_attempts: int = 5,
) -> ReplayRunner:  # fmt: skip
    return ReplayRunner(
        sessions, worker_id=f"r-{uuid.uuid4().hex[:6]}", batch_size=batch,
        lease=timedelta(seconds=60), poll_seconds=0.05, after_batch=after_batch,
        max_batch_attempts=max_batch_attempts,
    )  # fmt: skip


@pytest.fixture
async def dead_three(
    committing_client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[uuid.UUID]:
    """A distribution with three dead deliveries (three users), committed."""
    distribution = await create_distribution(committing_client)
    async with sessions() as session, session.begin():
        for n in (1, 2, 3):
            await settled_delivery(session, await stored_event(session, n), distribution)
    yield distribution


async def post(client: httpx.AsyncClient, url: str, body: Any = None, status: int = 202) -> Any:
    response = await client.post(url, json=body, headers=WRITER)
    assert response.status_code == status, response.text
    return response.json()


async def test_dead_deliveries_replayed_in_bulk_after_braze_recovers_arrive_exactly_once(
    committing_client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession],
    pool: asyncpg.Pool, emulator: Emulator, make_worker: WorkerFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.INFO, logger="app.ops.bulk_replay")
    distribution = await create_distribution(committing_client)
    async with sessions() as session, session.begin():
        for n in (1, 2, 3):
            event = await stored_event(session, n)
            await settled_delivery(session, event, distribution, status="pending", attempts=0)
    emulator.state.faults.fail_next(50, status=503)
    worker = await make_worker(schedule="0.05s")
    await drain(worker)
    assert await statuses(pool) == {"dead": 3}

    emulator.state.faults.clear()
    body = {"filter": {"distribution_id": str(distribution), "status": "dead"}}
    plan = await post(committing_client, "/api/v1/replays/plan", body, 200)
    replay = await post(committing_client, "/api/v1/replays", body)
    # The Braze lanes and the replay lane of one worker process, as `run_worker` pairs them.
    lanes = QueueLanes(pool=pool, wake=worker.wake, replays=runner(sessions, batch=2))  # 2 + 1
    stop = asyncio.Event()
    running = asyncio.gather(worker.run(stop), lanes.run(stop))
    try:
        for _ in range(400):  # polls the outcome; the deadline only stops a hung test
            if await statuses(pool) == {"delivered": 3}:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await running

    shown = (await committing_client.get(f"/api/v1/replays/{replay['id']}", headers=READER)).json()
    assert plan["count"] == shown["total"] == shown["matched"] == shown["queued"] == 3
    assert (shown["status"], shown["skipped"]) == ("done", {})
    # Its end is logged with its counts.
    done = [r.getMessage() for r in caplog.records if "is done" in r.getMessage()]
    assert done == [f"replay {replay['id']} (bulk) is done: 3 matched, 3 queued, 0 skipped {{}}"]
    accepted = [r for r in emulator.state.requests_snapshot() if r["status"] == 201]
    assert sum(r["object_count"] for r in accepted) == 3  # each user once, after the recovery
    profiles = emulator.state.profiles_snapshot()
    assert all("welcome_code" in profiles[f"external_id:user-{n}"] for n in (1, 2, 3))
    rows = await pool.fetch(
        "SELECT delivery_id, outcome FROM delivery_attempts WHERE replay_id = $1 ORDER BY id",
        uuid.UUID(replay["id"]),
    )
    assert sorted(r["outcome"] for r in rows) == ["delivered"] * 3 + ["replay_queued"] * 3
    detail = await committing_client.get(
        f"/api/v1/deliveries/{rows[0]['delivery_id']}", headers=READER
    )
    assert {a["trigger"] for a in detail.json()["attempts_log"] if a["replay_id"]} == {"bulk"}


async def test_cancel_stops_a_running_replay_between_batches(
    committing_client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession],
    dead_three: uuid.UUID, pool: asyncpg.Pool,
) -> None:  # fmt: skip
    body = {"filter": {"distribution_id": str(dead_three), "status": "dead"}}
    replay = await post(committing_client, "/api/v1/replays", body)

    answers: list[Any] = []

    async def cancel_after_the_first(replay_id: uuid.UUID) -> None:
        answers.append(
            await post(committing_client, f"/api/v1/replays/{replay_id}/cancel", status=200)
        )

    one_by_one = runner(sessions, batch=1, after_batch=cancel_after_the_first)
    assert await one_by_one.claim() == uuid.UUID(replay["id"])
    await one_by_one.run(uuid.UUID(replay["id"]))

    # Answered at once; what it queued is withdrawn after the answer.
    [answer] = answers
    assert (answer["status"], answer["withdrawing"], answer["withdrawn"]) == ("canceled", True, 0)
    shown = (await committing_client.get(f"/api/v1/replays/{replay['id']}", headers=READER)).json()
    assert (shown["status"], shown["matched"], shown["queued"]) == ("canceled", 1, 1)
    assert (shown["withdrawing"], shown["withdrawn"]) == (False, 1)
    # What it had queued and was not sent yet is withdrawn, with an attempt row saying so.
    assert await statuses(pool) == {"skipped": 1, "dead": 2}
    withdrawn = await pool.fetchrow(
        "SELECT d.skip_reason, a.outcome, a.message, a.replay_id FROM deliveries d"
        " JOIN delivery_attempts a ON a.delivery_id = d.id"
        " WHERE d.status = 'skipped' ORDER BY a.id DESC LIMIT 1"
    )
    assert dict(withdrawn) == {
        "skip_reason": "replay_canceled", "outcome": "skipped",
        "message": "replay canceled by ops-team", "replay_id": uuid.UUID(replay["id"]),
    }  # fmt: skip
    assert await one_by_one.claim() is None  # a canceled replay is not taken up again

    # One being sent at the cancel that Braze failed comes back for a retry: the sweep
    # withdraws it too.
    await pool.execute(
        "UPDATE deliveries SET status = 'pending', skip_reason = NULL WHERE status = 'skipped'"
    )
    assert await tend(pool) == (0, 0, 1)
    assert await statuses(pool) == {"skipped": 1, "dead": 2}


async def test_another_worker_resumes_a_crashed_replay_from_its_checkpoint(
    committing_client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession],
    dead_three: uuid.UUID, pool: asyncpg.Pool,
) -> None:  # fmt: skip
    replay = await post(committing_client, "/api/v1/replays", {"filter": {"status": "dead"}})
    replay_id = uuid.UUID(replay["id"])
    crashing, other = runner(sessions, batch=2), runner(sessions, batch=2)
    assert await crashing.claim() == replay_id
    assert await other.claim() is None  # leased: two workers never run the same replay
    assert await crashing.run_batch(replay_id) is True  # one batch, then the worker dies

    await pool.execute("UPDATE replays SET lease_expires_at = now() - interval '1 second'")
    assert await other.claim() == replay_id
    await other.run(replay_id)
    assert await crashing.run_batch(replay_id) is False  # the lease is not its own any more

    shown = (await committing_client.get(f"/api/v1/replays/{replay['id']}", headers=READER)).json()
    assert (shown["status"], shown["matched"], shown["queued"]) == ("done", 3, 3)
    queued = await pool.fetch(
        "SELECT delivery_id, count(*) AS n FROM delivery_attempts"
        " WHERE replay_id = $1 AND outcome = 'replay_queued' GROUP BY delivery_id",
        replay_id,
    )
    assert len(queued) == 3 and {r["n"] for r in queued} == {1}  # each delivery once


async def break_filter(pool: asyncpg.Pool) -> None:
    """A stored filter this version cannot read (a hand edit, say): every batch raises."""
    await pool.execute("UPDATE replays SET filter = filter || '{\"unknown_key\": 1}'")


async def mend_filter(pool: asyncpg.Pool) -> None:
    await pool.execute("UPDATE replays SET filter = filter - 'unknown_key'")


async def take_over(pool: asyncpg.Pool, worker: ReplayRunner, replay_id: uuid.UUID) -> None:
    """The lease runs out and the worker takes the replay up again."""
    await pool.execute("UPDATE replays SET lease_expires_at = now() - interval '1 second'")
    assert await worker.claim() == replay_id


async def test_a_batch_that_keeps_failing_fails_the_replay_with_the_error(
    committing_client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession],
    dead_three: uuid.UUID, pool: asyncpg.Pool,
) -> None:  # fmt: skip
    body = {"filter": {"distribution_id": str(dead_three), "status": "dead"}}
    replay = await post(committing_client, "/api/v1/replays", body)
    replay_id, url = uuid.UUID(replay["id"]), f"/api/v1/replays/{replay['id']}"
    await break_filter(pool)
    worker = runner(sessions, max_batch_attempts=3)
    assert await worker.claim() == replay_id

    for tries in (1, 2):
        await worker.run(replay_id)
        shown = (await committing_client.get(url, headers=READER)).json()
        assert (shown["status"], shown["batch_attempts"]) == ("running", tries)
        assert f"({tries} of 3 tries" in shown["last_error"]
        await take_over(pool, worker, replay_id)
    await worker.run(replay_id)

    shown = (await committing_client.get(url, headers=READER)).json()
    assert (shown["status"], shown["batch_attempts"], shown["queued"]) == ("failed", 3, 0)
    assert shown["finished_at"] is not None
    assert "failed 3 times in a row" in shown["last_error"]
    assert "ValidationError" in shown["last_error"] and "unknown_key" in shown["last_error"]
    await pool.execute("UPDATE replays SET lease_expires_at = now() - interval '1 second'")
    assert await worker.claim() is None  # not taken up again
    listed = await committing_client.get("/api/v1/replays?status=failed", headers=READER)
    assert [r["id"] for r in listed.json()["items"]] == [replay["id"]]
    canceled = await post(committing_client, f"{url}/cancel", status=200)
    assert (canceled["status"], canceled["withdrawn"]) == ("canceled", 0)  # it queued nothing
    assert canceled["last_error"] == shown["last_error"]  # why it failed stays shown
    assert await statuses(pool) == {"dead": 3}


async def test_a_committed_batch_starts_the_count_of_failed_tries_again(
    committing_client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession],
    dead_three: uuid.UUID, pool: asyncpg.Pool,
) -> None:  # fmt: skip
    replay = await post(committing_client, "/api/v1/replays", {"filter": {"status": "dead"}})
    replay_id, url = uuid.UUID(replay["id"]), f"/api/v1/replays/{replay['id']}"
    worker = runner(sessions, batch=1, max_batch_attempts=2)
    assert await worker.claim() == replay_id
    await break_filter(pool)
    await worker.run(replay_id)  # the first batch fails once
    await mend_filter(pool)
    await take_over(pool, worker, replay_id)
    assert await worker.run_batch(replay_id) is True  # then it commits
    await break_filter(pool)
    await worker.run(replay_id)  # the next batch fails once: one try of two, not two

    shown = (await committing_client.get(url, headers=READER)).json()
    assert (shown["status"], shown["batch_attempts"], shown["queued"]) == ("running", 1, 1)
    await mend_filter(pool)
    await take_over(pool, worker, replay_id)
    await worker.run(replay_id)
    shown = (await committing_client.get(url, headers=READER)).json()
    assert (shown["status"], shown["batch_attempts"], shown["queued"]) == ("done", 0, 3)


async def test_a_database_error_is_recorded_without_the_sql_or_its_parameters(
    committing_client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession],
    dead_three: uuid.UUID, pool: asyncpg.Pool,
) -> None:  # fmt: skip
    replay = await post(committing_client, "/api/v1/replays", {"filter": {"status": "dead"}})
    replay_id, url = uuid.UUID(replay["id"]), f"/api/v1/replays/{replay['id']}"
    worker = runner(sessions)
    assert await worker.claim() == replay_id
    await pool.execute(
        "CREATE FUNCTION refuse_attempts() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN RAISE EXCEPTION 'attempts are refused today'; END $$;"
        " CREATE TRIGGER refuse_attempts BEFORE INSERT ON delivery_attempts"
        " FOR EACH ROW EXECUTE FUNCTION refuse_attempts()"
    )
    try:
        await worker.run(replay_id)
    finally:
        await pool.execute(
            "DROP TRIGGER refuse_attempts ON delivery_attempts; DROP FUNCTION refuse_attempts()"
        )

    last_error = (await committing_client.get(url, headers=READER)).json()["last_error"]
    assert last_error.endswith("RaiseError: attempts are refused today"), last_error
    for leak in ("[SQL", "parameters", "INSERT", "user-1", "external_id"):
        assert leak not in last_error, last_error
