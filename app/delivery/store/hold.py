"""Pausing a distribution holds its queued deliveries; resuming it sends them. What no claim
may take (`NOT_STOPPED`), and the queue sweep (`tend`).

Held deliveries stay `pending`, their next try moved to HELD_UNTIL, far out of the due range:
claims then never walk past them (a paused distribution's backlog could be large). The claims
also skip any delivery of a paused distribution (`NOT_PAUSED`), which covers the few that turn
due meanwhile: one in flight at the pause that Braze failed goes back to pending with a retry.
"""

from __future__ import annotations

import asyncpg

from app.delivery.store.skipping import skip_statement
from app.delivery.store.withdrawal import NOT_WITHDRAWING, sweep_canceled

# A real timestamp, not 'infinity': asyncpg reads that back as a naive datetime.
HELD_UNTIL = "9999-01-01 00:00:00+00"

# For the claims' WHERE clauses; `d` is the delivery. The paused ids are read once per
# statement (an uncorrelated ARRAY(...) is an init plan): a per-row NOT EXISTS changed the
# claims' plans and doubled Postgres' CPU per Braze request in `make bench` (drain).
PAUSED = "ARRAY(SELECT id FROM distributions WHERE status = 'paused')"
NOT_PAUSED = f"d.distribution_id <> ALL ({PAUSED})"
# What every claim states: nothing of a paused distribution, nothing of a canceled replay or
# run whose deliveries are being withdrawn (withdrawal.py).
NOT_STOPPED = f"""
    {NOT_PAUSED} AND {NOT_WITHDRAWING}
"""

# What paused distributions have waiting, what a distribution deleted while paused left
# (nothing could resume it), and what a canceled replay or run still has waiting. Pauses,
# deletes and cancels change the queue in batches (queue_change.py, withdrawal.py); the sweep
# (`tend`, every worker, every TEND_SECONDS) catches what those could not see: a send in flight
# at the pause that Braze failed (back to pending with a retry), a row a claim or another
# transaction held at that moment. It leaves alone what a change still being carried out
# will take, and takes at most SWEPT_PER_STATEMENT rows a statement: the rest is the next
# sweep's.
TEND_SECONDS = 30.0
SWEPT_PER_STATEMENT = 5000
DELETED_WHILE_PAUSED = "the distribution was deleted while paused"
# A distribution whose queue change is still being carried out is its batches' to change.
_SETTLED = "status = 'paused' AND queue_change IS NULL"
_PAUSED = f"ARRAY(SELECT id FROM distributions WHERE {_SETTLED} AND deleted_at IS NULL)"
_GONE = f"ARRAY(SELECT id FROM distributions WHERE {_SETTLED} AND deleted_at IS NOT NULL)"
# `= ANY(...)` does not imply ix_deliveries_waiting_by_distribution's `distribution_id IS NOT
# NULL` (the array could be empty), so each states it.
_HOLD_PAUSED = f"""
UPDATE deliveries SET next_attempt_at = '{HELD_UNTIL}', updated_at = clock_timestamp()
WHERE id IN (
    SELECT d.id FROM deliveries AS d
    WHERE d.distribution_id = ANY({_PAUSED}) AND d.distribution_id IS NOT NULL
      AND d.status = 'pending' AND d.next_attempt_at < '{HELD_UNTIL}'
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
"""
_SKIP_DELETED = skip_statement(
    f"""id IN (
    SELECT d.id FROM deliveries AS d
    WHERE d.distribution_id = ANY({_GONE}) AND d.distribution_id IS NOT NULL
      AND (d.status = 'pending'
           OR (d.status = 'in_flight' AND d.lease_expires_at < clock_timestamp()))
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)""",
    reason="distribution_deleted", message=f"'{DELETED_WHILE_PAUSED}'",
)  # fmt: skip


async def tend(pool: asyncpg.Pool, *, limit: int = SWEPT_PER_STATEMENT) -> tuple[int, int, int]:
    """One sweep: (held, skipped for a deleted distribution, withdrawn for a canceled replay or
    run), at most `limit` rows a statement."""
    async with pool.acquire() as connection:
        held = await connection.execute(_HOLD_PAUSED, limit)
        dropped = await connection.execute(_SKIP_DELETED, limit)
        withdrawn = await sweep_canceled(connection, limit=limit)
    return _count(held), _count(dropped), withdrawn


def _count(status: str) -> int:
    return int(status.split()[-1])
