"""A Braze object that can never be sent must not hold up the users claimed with it."""

from __future__ import annotations

import asyncpg

from tests.delivery.conftest import Emulator, WorkerFactory, drain, enqueue


async def test_an_object_over_the_request_limit_fails_alone_and_the_others_are_sent(
    pool: asyncpg.Pool, emulator: Emulator, make_worker: WorkerFactory
) -> None:
    # Several distributions mapping a big raw object for one user add up past 4 MB.
    blob = {f"k{n}": "x" * 250 for n in range(17_000)}
    (huge,) = await enqueue(pool, [("mia", {"blob": blob})])
    (fine,) = await enqueue(pool, [("leo", {"code": "A"})])
    await drain(await make_worker())
    rows = await pool.fetch("SELECT id, status FROM deliveries ORDER BY id")
    assert [(r["id"], r["status"]) for r in rows] == [(huge, "failed"), (fine, "delivered")]
    assert "4" in (await pool.fetchval("SELECT last_error FROM deliveries WHERE id = $1", huge))
