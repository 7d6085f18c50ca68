"""A dead delivery, replayed once Braze works again, arrives exactly once."""

from __future__ import annotations

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.api.auth import OpsPrincipal
from app.ops.replay import replay_delivery
from tests.delivery.conftest import Emulator, WorkerFactory, drain, enqueue, statuses


async def test_a_dead_delivery_replayed_after_braze_recovers_arrives_once(
    pool: asyncpg.Pool, engine: AsyncEngine, emulator: Emulator, make_worker: WorkerFactory
) -> None:
    [delivery_id] = await enqueue(pool, [("mia", {"code": "A"})])
    emulator.state.faults.fail_next(10, status=503)
    worker = await make_worker(schedule="0.05s")
    await drain(worker)
    assert await statuses(pool) == {"dead": 1}

    emulator.state.faults.clear()
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        replay = await replay_delivery(
            session=session, delivery_id=delivery_id, force=False,
            principal=OpsPrincipal(name="ops-team", scope="write"),
        )  # fmt: skip
    await drain(worker)
    assert await statuses(pool) == {"delivered": 1}
    delivered = [r for r in emulator.state.requests_snapshot() if r["status"] == 201]
    assert len(delivered) == 1
    outcomes = await pool.fetch(
        "SELECT outcome, replay_id FROM delivery_attempts WHERE delivery_id = $1 ORDER BY id",
        delivery_id,
    )
    assert [(r["outcome"], r["replay_id"]) for r in outcomes][-2:] == [
        ("replay_queued", replay.id),
        ("delivered", replay.id),
    ]
