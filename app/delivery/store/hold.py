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
from app.delivery.store.withdrawal import NOT_WITHDRAWING

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

# What paused distributions have waiting, and what a distribution deleted while paused left
# (nothing could resume it). A pause or a delete changes the queue in batches
# (queue_change.py); the sweep (`tend`, every worker, every TEND_SECONDS) catches what those
# could not see: a send in flight at the pause that Braze failed (back to pending with a
# retry), a row a claim or another transaction held at that moment, a retry of a canceled
# replay's delivery.
TEND_SECONDS = 30.0
DELETED_WHILE_PAUSED = "the distribution was deleted while paused"
_PAUSED = "ARRAY(SELECT id FROM distributions WHERE status = 'paused' AND deleted_at IS NULL)"
_GONE = "ARRAY(SELECT id FROM distributions WHERE status = 'paused' AND deleted_at IS NOT NULL)"
_HOLD_PAUSED = f"""
UPDATE deliveries SET next_attempt_at = '{HELD_UNTIL}', updated_at = clock_timestamp()
WHERE distribution_id = ANY({_PAUSED}) AND status = 'pending' AND next_attempt_at < '{HELD_UNTIL}'
"""
_SKIP_DELETED = skip_statement(
    f"distribution_id = ANY({_GONE}) AND (status = 'pending'"
    " OR (status = 'in_flight' AND lease_expires_at < clock_timestamp()))",
    reason="distribution_deleted", message=f"'{DELETED_WHILE_PAUSED}'",
)  # fmt: skip
_WITHDRAW_CANCELED = skip_statement(
    "replay_id = ANY(ARRAY(SELECT id FROM replays WHERE status = 'canceled'))"
    " AND status = 'pending'",
    reason="replay_canceled", message="'the replay was canceled'",
)  # fmt: skip


async def tend(pool: asyncpg.Pool) -> tuple[int, int, int]:
    """One sweep: (held, skipped for a deleted distribution, withdrawn for a canceled replay)."""
    async with pool.acquire() as connection:
        held = await connection.execute(_HOLD_PAUSED)
        dropped = await connection.execute(_SKIP_DELETED)
        withdrawn = await connection.execute(_WITHDRAW_CANCELED)
    return _count(held), _count(dropped), _count(withdrawn)


def _count(status: str) -> int:
    return int(status.split()[-1])
