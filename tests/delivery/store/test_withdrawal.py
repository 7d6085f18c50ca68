"""Canceling a replay or a run with a large backlog answers at once; its waiting deliveries are
withdrawn in batches after the answer (app/delivery/store/withdrawal.py), no claim takes one of
them meanwhile nor waits on their locks, and the workers' tending lane carries on what an API
left."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.api.auth import OpsPrincipal
from app.delivery.store import publishing, withdrawal
from app.delivery.store.batches import BATCH
from app.delivery.store.claims import Reaping, claim_users
from app.ops import replay_service
from tests.conftest import READER, WRITER
from tests.delivery.conftest import add_distribution
from tests.delivery.store.withdrawal_data import (
    others_due,
    owner_row,
    replay_with_waiting,
    run_with_waiting,
    waiting,
)
from tests.factories import distribution_body

WAITING = 2 * BATCH + 2000
OTHERS = 50
OPS = OpsPrincipal("ops-team", "write")


async def claimed_users(pool: asyncpg.Pool) -> set[str]:
    """Whose deliveries a Braze claim and a publisher claim lease now, each bounded in time:
    a claim waiting on a row lock fails the test instead of hanging it."""
    rows = await asyncio.wait_for(
        claim_users(pool, worker_id="w-test", lease_seconds=60, users=75, reaping=Reaping()), 5
    )
    users = {d.braze_user_key for d in rows.deliveries}
    async with pool.acquire() as connection:
        published = await asyncio.wait_for(
            publishing.claim(connection, worker_id="w-test", lease=60, limit=100), 5
        )
        ids = [r["id"] for r in published]
        users |= {
            r["braze_user_key"]
            for r in await connection.fetch(
                "SELECT braze_user_key FROM deliveries WHERE id = ANY($1::bigint[])", ids
            )
        }
    return users


async def test_a_cancel_touches_no_waiting_delivery_and_no_claim_takes_one_or_waits_for_one(
    pool: asyncpg.Pool, engine: AsyncEngine
) -> None:
    replay_id = await replay_with_waiting(pool, WAITING)
    await others_due(pool, OTHERS)

    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        canceled = await replay_service.cancel(session=session, replay_id=replay_id, principal=OPS)
        # Before the cancel commits: it holds no lock on any of them and changed none.
        free = await pool.fetchval(
            "SELECT count(*) FROM (SELECT id FROM deliveries WHERE replay_id = $1"
            " AND status = 'pending' FOR UPDATE SKIP LOCKED) AS f",
            replay_id,
        )
        assert free == WAITING
    assert (canceled.status, canceled.withdrawing, canceled.withdrawn) == ("canceled", True, 0)

    # A batch at work holds its rows: claims neither wait for them nor take any of them.
    async with pool.acquire() as batch, batch.transaction():
        await batch.execute(
            "SELECT id FROM deliveries WHERE replay_id = $1 ORDER BY id LIMIT $2 FOR UPDATE",
            replay_id, BATCH,
        )  # fmt: skip
        taken = await claimed_users(pool)
    assert taken and all(user.startswith("external_id:o-") for user in taken)
    # Nor before any batch ran.
    assert not any(user.startswith("external_id:r-") for user in await claimed_users(pool))

    async with pool.acquire() as connection:
        assert await withdrawal.carry_out(connection, withdrawal.REPLAY, replay_id) == WAITING
    assert await owner_row(pool, "replays", replay_id) == (False, WAITING)
    assert await waiting(pool, "replay_id", replay_id) == 0
    attempts = await pool.fetch(
        "SELECT message, count(*) AS n FROM delivery_attempts WHERE replay_id = $1 GROUP BY 1",
        replay_id,
    )
    assert [tuple(r) for r in attempts] == [("replay canceled by ops-team", WAITING)]


async def test_a_run_cancel_answers_at_once_and_the_batches_after_it_withdraw_everything(
    committing_client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    created = await committing_client.post(
        "/api/v1/distributions", json=distribution_body(filters={}, consent=None), headers=WRITER
    )
    distribution = uuid.UUID(created.json()["id"])
    run_id = await run_with_waiting(pool, distribution, WAITING)

    answer = await committing_client.post(f"/api/v1/runs/{run_id}/cancel", headers=WRITER)
    assert answer.status_code == 200, answer.text
    canceled = answer.json()
    assert (canceled["status"], canceled["withdrawing"], canceled["withdrawn"]) == (
        "canceled", True, 0,
    )  # fmt: skip

    # The API ran the batches once its answer was sent.
    shown = (await committing_client.get(f"/api/v1/runs/{run_id}", headers=READER)).json()
    assert (shown["withdrawing"], shown["withdrawn"]) == (False, WAITING)
    assert shown["progress"]["skipped"] == {"total": WAITING, "reasons": {"run_canceled": WAITING}}
    messages = await pool.fetch("SELECT DISTINCT message FROM delivery_attempts")
    assert [r["message"] for r in messages] == [f"run {run_id} canceled by ops-team"]


async def test_a_replay_cancel_with_nothing_waiting_is_not_withdrawing(
    committing_client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    replay_id = await replay_with_waiting(pool, 0)
    answer = await committing_client.post(f"/api/v1/replays/{replay_id}/cancel", headers=WRITER)
    assert answer.status_code == 200, answer.text
    assert (answer.json()["withdrawing"], answer.json()["withdrawn"]) == (False, 0)


async def test_each_batch_is_its_own_transaction_after_the_last_and_shows_progress(
    pool: asyncpg.Pool,
) -> None:
    replay_id = await replay_with_waiting(pool, WAITING, status="canceled", withdrawing=True)
    async with pool.acquire() as connection:
        first = await withdrawal.run_batch(connection, withdrawal.REPLAY, replay_id)
        assert first is not None and first[0] == BATCH
        # Committed, visible to all, and the next batch starts after its last row.
        assert await owner_row(pool, "replays", replay_id) == (True, BATCH)
        second = await withdrawal.run_batch(connection, withdrawal.REPLAY, replay_id, first[1])
        assert second is not None and second[0] == BATCH and second[1] > first[1]
    assert await waiting(pool, "replay_id", replay_id) == WAITING - 2 * BATCH


async def test_a_batch_leaves_the_work_to_another_batch_at_work_on_the_same_replay(
    pool: asyncpg.Pool,
) -> None:
    replay_id = await replay_with_waiting(pool, 10, status="canceled", withdrawing=True)
    async with pool.acquire() as other, other.transaction():
        await other.execute("SELECT 1 FROM replays WHERE id = $1 FOR NO KEY UPDATE", replay_id)
        async with pool.acquire() as connection:
            assert await withdrawal.run_batch(connection, withdrawal.REPLAY, replay_id) is None


async def test_the_tending_lane_carries_on_withdrawals_the_api_left(pool: asyncpg.Pool) -> None:
    # Canceled and marked, as by an API that died before its first batch.
    replay_id = await replay_with_waiting(pool, BATCH + 10, status="canceled", withdrawing=True)
    distribution = await add_distribution(pool)
    run_id = await run_with_waiting(pool, distribution, 20, status="canceled", withdrawing=True)

    assert await withdrawal.continue_withdrawals(pool) == BATCH + 30
    assert await owner_row(pool, "replays", replay_id) == (False, BATCH + 10)
    assert await owner_row(pool, "runs", run_id) == (False, 20)
    assert await withdrawal.continue_withdrawals(pool) == 0  # nothing left marked


async def test_a_send_in_flight_at_the_cancel_keeps_the_mark_and_its_retry_is_withdrawn(
    pool: asyncpg.Pool, engine: AsyncEngine
) -> None:
    replay_id = await replay_with_waiting(pool, 4)
    in_flight = await pool.fetchval(
        "UPDATE deliveries SET status = 'in_flight', leased_by = 'w-other',"
        " lease_expires_at = now() + interval '1 minute'"
        " WHERE id = (SELECT min(id) FROM deliveries WHERE attributes IS NOT NULL) RETURNING id"
    )
    async with AsyncSession(engine) as session, session.begin():
        await replay_service.cancel(session=session, replay_id=replay_id, principal=OPS)
    async with pool.acquire() as connection:
        assert await withdrawal.carry_out(connection, withdrawal.REPLAY, replay_id) == 3
    assert await owner_row(pool, "replays", replay_id) == (True, 3)  # one is on its way

    # Braze failed it: back to pending with a retry due now. No claim takes it...
    await pool.execute(
        "UPDATE deliveries SET status = 'pending', leased_by = NULL, lease_expires_at = NULL,"
        " attempts = 1, next_attempt_at = now() WHERE id = $1",
        in_flight,
    )  # fmt: skip
    assert await claimed_users(pool) == set()
    # ... and the tending lane withdraws it; then nothing of the replay waits any more.
    assert await withdrawal.continue_withdrawals(pool) == 1
    assert await owner_row(pool, "replays", replay_id) == (False, 4)
