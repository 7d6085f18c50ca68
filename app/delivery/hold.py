"""Pausing a distribution holds its queued deliveries; resuming it sends them.

Held deliveries stay `pending`, their next try moved to HELD_UNTIL, far out of the due range:
claims then never walk past them (a paused distribution's backlog could be large). The claims
also skip any delivery of a paused distribution (`NOT_PAUSED`), which covers the few that turn
due meanwhile: one in flight at the pause that Braze failed goes back to pending with a retry.
"""

from __future__ import annotations

import uuid

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
_DROP = text(f"""
WITH skipped AS (
    UPDATE deliveries SET status = 'skipped', skip_reason = 'distribution_deleted',
        last_error = :message, updated_at = clock_timestamp()
    WHERE distribution_id = :distribution_id AND status = 'pending'
      AND next_attempt_at >= '{HELD_UNTIL}'
    RETURNING id, replay_id
)
INSERT INTO delivery_attempts (delivery_id, outcome, message, replay_id)
SELECT id, 'skipped', :message, replay_id FROM skipped
""")


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
    message = "the distribution was deleted while paused"
    result = await session.execute(_DROP, {"distribution_id": distribution_id, "message": message})
    return int(result.rowcount)  # type: ignore[attr-defined]
