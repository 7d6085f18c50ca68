"""Pausing a distribution holds its queued deliveries; resuming it sends them.

Held deliveries stay `pending`, their next try moved to HELD_UNTIL, far out of the due range:
claims then never walk past them (a paused distribution's backlog could be large). The claims
also skip any delivery of a paused distribution (`NOT_PAUSED`), which covers the few that turn
due meanwhile: one in flight at the pause that Braze failed goes back to pending with a retry.
"""

from __future__ import annotations

import uuid

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# A real timestamp, not 'infinity': asyncpg reads that back as a naive datetime.
HELD_UNTIL = "9999-01-01 00:00:00+00"

# For the claims' WHERE clauses; `d` is the delivery. The paused ids are read once per
# statement (an uncorrelated ARRAY(...) is an init plan): a per-row NOT EXISTS changed the
# claims' plans and doubled Postgres' CPU per Braze request in `make bench` (drain).
NOT_PAUSED = """
    d.distribution_id <> ALL (ARRAY(SELECT id FROM distributions WHERE status = 'paused'))
"""

_HOLD = text(f"""
UPDATE deliveries SET next_attempt_at = '{HELD_UNTIL}', updated_at = clock_timestamp()
WHERE distribution_id = :distribution_id AND status = 'pending'
""")
_RELEASE = text(f"""
UPDATE deliveries SET next_attempt_at = clock_timestamp(), updated_at = clock_timestamp()
WHERE distribution_id = :distribution_id AND status IN ('pending', 'in_flight')
  AND next_attempt_at >= '{HELD_UNTIL}'
""")

# A paused distribution deleted: what it held will never be resumed, so it is settled.
_DROP = text("""
WITH skipped AS (
    UPDATE deliveries SET status = 'skipped', skip_reason = 'distribution_deleted',
        last_error = :message, updated_at = clock_timestamp()
    WHERE distribution_id = :distribution_id AND status = 'pending'
    RETURNING id, replay_id
)
INSERT INTO delivery_attempts (delivery_id, outcome, message, replay_id)
SELECT id, 'skipped', :message, replay_id FROM skipped
""")
DELETED_WHILE_PAUSED = "the distribution was deleted while paused"

# The sweep (`tend`, every worker, every TEND_SECONDS) catches what the statements above cannot
# see: a send in flight at the pause that Braze failed (back to pending with a retry), a row
# another transaction was writing at that moment, a retry of a canceled replay's delivery.
TEND_SECONDS = 30.0
_PAUSED = "ARRAY(SELECT id FROM distributions WHERE status = 'paused' AND deleted_at IS NULL)"
_GONE = "ARRAY(SELECT id FROM distributions WHERE status = 'paused' AND deleted_at IS NOT NULL)"
_TEND_HOLD = f"""
UPDATE deliveries SET next_attempt_at = '{HELD_UNTIL}', updated_at = clock_timestamp()
WHERE distribution_id = ANY({_PAUSED}) AND status = 'pending' AND next_attempt_at < '{HELD_UNTIL}'
"""
_TEND_SKIP = """
WITH skipped AS (
    UPDATE deliveries SET status = 'skipped', skip_reason = $1, last_error = $2,
        lease_expires_at = NULL, leased_by = NULL, updated_at = clock_timestamp()
    WHERE {where}
    RETURNING id, replay_id
)
INSERT INTO delivery_attempts (delivery_id, outcome, message, replay_id)
SELECT id, 'skipped', $2, replay_id FROM skipped
"""
_TEND_DROP = _TEND_SKIP.format(
    where=f"distribution_id = ANY({_GONE}) AND (status = 'pending'"
    " OR (status = 'in_flight' AND lease_expires_at < clock_timestamp()))"
)
_TEND_WITHDRAW = _TEND_SKIP.format(
    where="replay_id = ANY(ARRAY(SELECT id FROM replays WHERE status = 'canceled'))"
    " AND status = 'pending'"
)


async def hold(session: AsyncSession, distribution_id: uuid.UUID) -> int:
    """Hold the distribution's pending deliveries; how many."""
    result = await session.execute(_HOLD, {"distribution_id": distribution_id})
    return int(result.rowcount)  # type: ignore[attr-defined]


async def release(session: AsyncSession, distribution_id: uuid.UUID) -> int:
    """Make the held deliveries due now; how many."""
    result = await session.execute(_RELEASE, {"distribution_id": distribution_id})
    return int(result.rowcount)  # type: ignore[attr-defined]


async def drop(session: AsyncSession, distribution_id: uuid.UUID) -> int:
    """Skip what a paused distribution held (it was deleted); how many."""
    values = {"distribution_id": distribution_id, "message": DELETED_WHILE_PAUSED}
    result = await session.execute(_DROP, values)
    return int(result.rowcount)  # type: ignore[attr-defined]


async def tend(pool: asyncpg.Pool) -> tuple[int, int, int]:
    """One sweep: (held, skipped for a deleted distribution, withdrawn for a canceled replay)."""
    async with pool.acquire() as connection:
        held = await connection.execute(_TEND_HOLD)
        dropped = await connection.execute(_TEND_DROP, "distribution_deleted", DELETED_WHILE_PAUSED)
        withdrawn = await connection.execute(
            _TEND_WITHDRAW, "replay_canceled", "the replay was canceled"
        )
    return _count(held), _count(dropped), _count(withdrawn)


def _count(status: str) -> int:
    return int(status.split()[-1])
