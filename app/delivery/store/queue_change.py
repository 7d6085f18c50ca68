"""Holding, releasing or skipping a distribution's whole queue, a batch at a time.

A pause, a resume or a delete of a distribution with a large backlog (a million deliveries
after a long Braze outage) changes every one of its waiting rows. So the API only marks the
distribution (`queue_change`: hold, release or skip; counted in `queue_changed`) and answers;
the change is then carried out in batches (batches.py), by the API right after its answer and
by every worker's tending lane (`continue_changes`), which carries on what an API that died
left. Both at once only share the work: each batch takes its rows with SKIP LOCKED.

Correctness does not wait for the batches: the claims skip every delivery of a paused
distribution (`hold.NOT_STOPPED`) from the moment the pause commits; holding only moves those
rows out of the due range so that claims do not walk past them. A row a claim holds at that
moment is passed over (SKIP LOCKED) and comes back to the sweep (`hold.tend`).

Each batch first takes the distribution's row FOR SHARE: a pause, resume or delete (which
takes it FOR UPDATE) waits for the batch in progress, and the next batch sees the new change.
So a hold never lands after the resume that followed it, with nothing left to release it.
Each batch reads its rows through `ix_deliveries_waiting_by_distribution` (distribution_id,
next_attempt_at, id) over waiting rows only, after the last row of the batch before: it reads
the rows it changes, never the history nor what earlier batches did.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from functools import partial

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from app.delivery.store.batches import BATCH, IN_INDEX_ORDER, after_the_answer, to_the_end
from app.delivery.store.hold import DELETED_WHILE_PAUSED, HELD_UNTIL
from app.delivery.store.skipping import skip_statement

logger = logging.getLogger(__name__)

HOLD, RELEASE, SKIP = "hold", "release", "skip"
CHANGES = (HOLD, RELEASE, SKIP)
__all__ = ["BATCH", "CHANGES", "carry_out", "carry_out_on", "continue_changes", "run_batch"]
Key = tuple[datetime, int]

# SKIP LOCKED: a pause, resume or delete changing the distribution now (its transaction holds
# the row) marks the next change itself; this batch stops rather than wait for it.
_CURRENT = "SELECT queue_change FROM distributions WHERE id = $1 FOR SHARE SKIP LOCKED"
# Keyset on (next_attempt_at, id): each batch starts after the last, so it never walks the
# index entries that earlier batches left behind (dead until vacuum: a batch from the start
# of the range would read them all again, and the batches would grow slower one by one).
_PICK = """
SELECT d.id, d.next_attempt_at FROM deliveries AS d
WHERE d.distribution_id = $1 AND d.status = 'pending' AND {range}
  AND (d.next_attempt_at, d.id) > ($3, $4)
ORDER BY d.next_attempt_at, d.id
LIMIT $2
FOR UPDATE SKIP LOCKED
"""
_RANGES = {
    HOLD: f"d.next_attempt_at < '{HELD_UNTIL}'",
    RELEASE: f"d.next_attempt_at >= '{HELD_UNTIL}'",
    SKIP: "true",
}
# The picked rows, locked by the pick in the same transaction, changed by primary key.
_CHANGES = {
    HOLD: f"""
UPDATE deliveries SET next_attempt_at = '{HELD_UNTIL}', updated_at = clock_timestamp()
WHERE id = ANY($1::bigint[])
""",
    RELEASE: """
UPDATE deliveries SET next_attempt_at = clock_timestamp(), updated_at = clock_timestamp()
WHERE id = ANY($1::bigint[])
""",
    # As `hold.tend` skips what a deleted paused distribution left, with an attempt row each.
    SKIP: skip_statement(
        "id = ANY($1::bigint[])",
        reason="distribution_deleted",
        message=f"'{DELETED_WHILE_PAUSED}'",
    ),
}
_PROGRESS = "UPDATE distributions SET queue_changed = queue_changed + $2 WHERE id = $1"
_DONE = "UPDATE distributions SET queue_change = NULL WHERE id = $1 AND queue_change = $2"
_PENDING_CHANGES = "SELECT id FROM distributions WHERE queue_change IS NOT NULL ORDER BY id"
# Before every delivery: where a change starts.
START: Key = (datetime(1, 1, 1, tzinfo=UTC), 0)


async def run_batch(
    connection: asyncpg.Connection, distribution_id: uuid.UUID, after: Key = START
) -> tuple[int, Key] | None:
    """One batch of the distribution's queue change after `after`, in its own transaction:
    how many rows it changed and the key to start the next batch at; None when there is no
    change to make (any more)."""
    async with connection.transaction():
        change = await connection.fetchval(_CURRENT, distribution_id)
        if change is None:
            return None
        await connection.execute(IN_INDEX_ORDER)
        picked = await connection.fetch(
            _PICK.format(range=_RANGES[change]), distribution_id, BATCH, *after
        )
        if not picked:  # nothing left that is not locked elsewhere: the sweep takes those later
            await connection.execute(_DONE, distribution_id, change)
            return 0, after
        await connection.execute(_CHANGES[change], [r["id"] for r in picked])
        await connection.execute(_PROGRESS, distribution_id, len(picked))
        return len(picked), (picked[-1]["next_attempt_at"], picked[-1]["id"])


async def carry_out(connection: asyncpg.Connection, distribution_id: uuid.UUID) -> int:
    """Run the distribution's queue change to its end, batch after batch; rows changed."""
    return await to_the_end(partial(run_batch, connection, distribution_id), START)


async def continue_changes(pool: asyncpg.Pool) -> int:
    """Carry out every queue change still marked (one the API began and did not finish, or
    never began); rows changed. A step of the tending lane."""
    total = 0
    async with pool.acquire() as connection:
        for row in await connection.fetch(_PENDING_CHANGES):
            changed = await carry_out(connection, row["id"])
            if changed:
                logger.info("distribution %s: queue change carried on, %d rows", row["id"], changed)
            total += changed
    return total


async def carry_out_on(engine: AsyncEngine, distribution_id: uuid.UUID) -> None:
    """`carry_out` on a connection of the API's engine, after its answer (failures logged)."""
    await after_the_answer(
        engine, partial(carry_out, distribution_id=distribution_id),
        what=f"distribution {distribution_id}: queue change",
    )  # fmt: skip
