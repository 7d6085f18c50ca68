"""Test data for withdrawals: replays and runs with deliveries waiting, committed through the
worker's pool (the batches and the claims run on other connections)."""

from __future__ import annotations

import uuid

import asyncpg

from tests.delivery.conftest import add_distribution

# Of the waiting deliveries, one in this many waits for a code (the publisher's queue); the
# others have their Braze attributes (the Braze claims' queue).
TO_PUBLISH_EVERY = 4
_WAITING = """
INSERT INTO deliveries (distribution_id, distribution_version, trigger, braze_user_key,
    attributes, next_attempt_at, {column}, run_member)
SELECT $1, 1, $3::varchar, 'external_id:' || $4::text || (g % 500),
    CASE WHEN g % {every} <> 0
         THEN jsonb_build_object('external_id', $4 || (g % 500), 'code', 'C' || g) END,
    now() - interval '1 hour', $2, CASE WHEN $3::varchar = 'run' THEN 'member-' || g END
FROM generate_series(1, $5) AS g
"""


async def waiting_for(
    pool: asyncpg.Pool, distribution: uuid.UUID, *, column: str, owner: object, rows: int,
    prefix: str,
) -> None:  # fmt: skip
    """`rows` deliveries due an hour ago, of `owner` (a replay's or a run's id, in `column`)."""
    trigger = "run" if column == "run_id" else "bulk"
    await pool.execute(
        _WAITING.format(column=column, every=TO_PUBLISH_EVERY),
        distribution, owner, trigger, prefix, rows,
    )  # fmt: skip


async def replay_with_waiting(
    pool: asyncpg.Pool, rows: int, *, status: str = "done", withdrawing: bool = False
) -> uuid.UUID:
    """A replay that queued `rows` deliveries that still wait (users `external_id:r-...`)."""
    replay_id: uuid.UUID = await pool.fetchval(
        "INSERT INTO replays (kind, trigger, requested_by, filter, status, withdrawing,"
        " canceled_at, canceled_by)"
        " VALUES ('bulk', 'bulk', 'ops-team', '{}', $1::varchar, $2,"
        " CASE WHEN $1 = 'canceled' THEN now() END, CASE WHEN $1 = 'canceled' THEN 'ops-team' END)"
        " RETURNING id",
        status, withdrawing,
    )  # fmt: skip
    distribution = await add_distribution(pool)
    await waiting_for(
        pool, distribution, column="replay_id", owner=replay_id, rows=rows, prefix="r-"
    )
    return replay_id


async def run_with_waiting(
    pool: asyncpg.Pool, distribution: uuid.UUID, rows: int, *, status: str = "running",
    withdrawing: bool = False,
) -> int:  # fmt: skip
    """A run of `distribution` that paged `rows` members whose deliveries still wait."""
    run_id: int = await pool.fetchval(
        "INSERT INTO runs (distribution_id, distribution_version, status, audience,"
        " delay_seconds, scheduled_at, requested_by, started_at, withdrawing, canceled_at,"
        " canceled_by)"
        " VALUES ($1, 1, $2::varchar, '{\"segment_id\": \"s\"}', 0, now(), 'ops-team', now(),"
        " $3, CASE WHEN $2 = 'canceled' THEN now() END,"
        " CASE WHEN $2 = 'canceled' THEN 'ops-team' END)"
        " RETURNING id",
        distribution, status, withdrawing,
    )  # fmt: skip
    await waiting_for(pool, distribution, column="run_id", owner=run_id, rows=rows, prefix="m-")
    return run_id


async def others_due(pool: asyncpg.Pool, users: int) -> None:
    """Due deliveries of no replay nor run (users `external_id:o-...`), newer than the above."""
    distribution = await add_distribution(pool)
    await pool.execute(
        "INSERT INTO deliveries (distribution_id, distribution_version, braze_user_key,"
        " attributes, next_attempt_at)"
        " SELECT $1, 1, 'external_id:o-' || g, jsonb_build_object('external_id', 'o-' || g),"
        " now() - interval '1 minute' FROM generate_series(1, $2) AS g",
        distribution, users,
    )  # fmt: skip


async def owner_row(pool: asyncpg.Pool, table: str, owner: object) -> tuple[bool, int]:
    """(withdrawing, withdrawn) of a replay or run."""
    row = await pool.fetchrow(f"SELECT withdrawing, withdrawn FROM {table} WHERE id = $1", owner)
    return row["withdrawing"], row["withdrawn"]


async def waiting(pool: asyncpg.Pool, column: str, owner: object) -> int:
    return int(
        await pool.fetchval(
            f"SELECT count(*) FROM deliveries WHERE {column} = $1"
            " AND status IN ('pending', 'in_flight')",
            owner,
        )
    )
