"""The queue sweep (`hold.tend`): each statement bounded, reading waiting rows only through
their partial indexes, and leaving to its batches a change or a withdrawal still being
carried out."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg

from app.delivery.store import hold, withdrawal
from app.delivery.store.batches import IN_INDEX_ORDER
from app.delivery.store.hold import tend
from tests.delivery.conftest import add_distribution
from tests.delivery.store.withdrawal_data import replay_with_waiting, run_with_waiting, waiting


async def stopped_distribution(
    pool: asyncpg.Pool, rows: int, *, deleted: bool = False, change: str | None = None
) -> uuid.UUID:
    """A paused (or deleted while paused) distribution with `rows` due deliveries not held."""
    distribution = await add_distribution(pool)
    await pool.execute(
        "UPDATE distributions SET status = 'paused', queue_change = $2,"
        " deleted_at = CASE WHEN $3 THEN now() END WHERE id = $1",
        distribution, change, deleted,
    )  # fmt: skip
    await pool.execute(
        "INSERT INTO deliveries (distribution_id, distribution_version, braze_user_key,"
        " attributes) SELECT $1, 1, 'external_id:p-' || g, '{\"code\": \"A\"}'"
        " FROM generate_series(1, $2) AS g",
        distribution, rows,
    )  # fmt: skip
    return distribution


async def test_each_sweep_statement_takes_at_most_its_limit_and_the_next_sweep_the_rest(
    pool: asyncpg.Pool,
) -> None:
    await stopped_distribution(pool, 12)
    await stopped_distribution(pool, 7, deleted=True)
    await replay_with_waiting(pool, 7, status="canceled")
    # A retry of a run's delivery in flight at its cancel, back after the withdrawal ended.
    await run_with_waiting(pool, await add_distribution(pool), 3, status="canceled")

    assert await tend(pool, limit=5) == (5, 5, 5 + 3)
    assert await tend(pool, limit=5) == (5, 2, 2)
    assert await tend(pool, limit=5) == (2, 0, 0)
    assert await tend(pool, limit=5) == (0, 0, 0)
    reasons = await pool.fetch(
        "SELECT skip_reason, count(*) AS n FROM deliveries WHERE status = 'skipped' GROUP BY 1"
        " ORDER BY 1"
    )
    assert [tuple(r) for r in reasons] == [
        ("distribution_deleted", 7), ("replay_canceled", 7), ("run_canceled", 3),
    ]  # fmt: skip


async def test_the_sweep_leaves_a_change_or_a_withdrawal_being_carried_out_to_its_batches(
    pool: asyncpg.Pool,
) -> None:
    await stopped_distribution(pool, 3, change="hold")
    await stopped_distribution(pool, 3, deleted=True, change="skip")
    await replay_with_waiting(pool, 3, status="canceled", withdrawing=True)
    await run_with_waiting(
        pool, await add_distribution(pool), 3, status="canceled", withdrawing=True
    )
    assert await tend(pool) == (0, 0, 0)


async def test_the_sweep_leaves_a_replay_of_a_run_delivery_and_what_was_canceled_long_ago(
    pool: asyncpg.Pool,
) -> None:
    distribution = await add_distribution(pool)
    long_ago = await run_with_waiting(pool, distribution, 2, status="canceled")
    await pool.execute(
        "UPDATE runs SET canceled_at = now() - interval '2 days' WHERE id = $1", long_ago
    )
    recent = await run_with_waiting(pool, distribution, 2, status="canceled")
    # Queued again by a replay after the cancel: the replay's now, not the run's.
    replay_id = await replay_with_waiting(pool, 0)
    await pool.execute("UPDATE deliveries SET replay_id = $1 WHERE run_id = $2", replay_id, recent)

    assert await tend(pool) == (0, 0, 0)
    assert await waiting(pool, "run_id", long_ago) == await waiting(pool, "run_id", recent) == 2


def _scans(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if node.get("Relation Name") == "deliveries" and "Scan" in node["Node Type"]:
        yield node
    for child in node.get("Plans", []):
        yield from _scans(child)


async def _deliveries_scans(
    pool: asyncpg.Pool, statement: str, *args: Any, batch: bool = False
) -> list[tuple[str | None, float]]:
    """(index, rows read) of each scan of deliveries the statement runs (rolled back), set up
    as a batch runs it when `batch`."""
    async with pool.acquire() as connection:
        transaction = connection.transaction()
        await transaction.start()
        try:
            if batch:
                await connection.execute(IN_INDEX_ORDER)
            found = await connection.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}", *args)
        finally:
            await transaction.rollback()
    plan = json.loads(found)[0]["Plan"]
    return [
        (s.get("Index Name"), s.get("Actual Rows", 0) + s.get("Rows Removed by Filter", 0))
        for s in _scans(plan)
    ]


async def test_the_sweep_and_the_batches_read_waiting_rows_only_never_the_history(
    pool: asyncpg.Pool,
) -> None:
    replay_id = await replay_with_waiting(pool, 5000, status="canceled")
    distribution = await add_distribution(pool)
    run_id = await run_with_waiting(pool, distribution, 5000, status="canceled")
    # The history: what their withdrawals skipped long ago, and what was sent.
    await pool.execute(
        "UPDATE deliveries SET status = 'skipped' WHERE id % 1000 <> 0 AND run_id IS NOT NULL"
        " OR id % 1000 <> 0 AND replay_id IS NOT NULL"
    )
    await stopped_distribution(pool, 5)
    await pool.execute("ANALYZE deliveries")

    for owner, owner_id in ((withdrawal.REPLAY, replay_id), (withdrawal.RUN, run_id)):
        sql = withdrawal._SQL[owner]
        index = f"ix_deliveries_waiting_by_{owner.noun}"
        for statement, args in ((sql.sweep, [100]), (sql.pick, [owner_id, 0, 100])):
            scans = await _deliveries_scans(pool, statement, *args, batch=statement == sql.pick)
            # The scan that finds the rows reads the few waiting ones; the rest by primary key.
            assert scans[0][0] == index and scans[0][1] <= 10, (owner.noun, statement, scans)
            assert {name for name, _ in scans[1:]} <= {"pk_deliveries"}, scans
    scans = await _deliveries_scans(pool, hold._HOLD_PAUSED, 100)
    assert scans[0] == ("ix_deliveries_waiting_by_distribution", 5), scans
