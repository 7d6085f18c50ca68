"""The publisher's statements on `deliveries`: claiming the deliveries that wait for a code
(no Braze object yet) and settling each once its code is published, mapped or refused."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from app.delivery.store.hold import NOT_STOPPED

# Its own index (ix_deliveries_due_to_publish; see claims.py on why the plans are
# stable). Expired leases come back as pending through `reap_expired_leases` first.
_CLAIM = f"""
UPDATE deliveries AS d SET status = 'in_flight', leased_by = $1, updated_at = clock_timestamp(),
    lease_expires_at = clock_timestamp() + $2 * interval '1 second'
FROM (
    SELECT id FROM deliveries AS d
    WHERE d.status = 'pending' AND d.attributes IS NULL
      AND d.next_attempt_at <= statement_timestamp() AND {NOT_STOPPED}
    ORDER BY d.next_attempt_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
) AS due
WHERE d.id = due.id
RETURNING d.id, d.distribution_id, d.event_id, d.attempts
"""


_SETTLE = """
WITH settled AS (
    UPDATE deliveries SET
        status = $2, attributes = $3::jsonb, braze_user_key = coalesce($4, braze_user_key),
        skip_reason = $5, last_error = $6, next_attempt_at = $7,
        attempts = attempts + $8, lease_expires_at = NULL, leased_by = NULL,
        updated_at = clock_timestamp()
    WHERE id = $1 AND status = 'in_flight' AND leased_by = $9
    RETURNING id
)
INSERT INTO delivery_attempts (delivery_id, outcome, message)
SELECT id, $10, $11 FROM settled
"""


async def claim(
    connection: asyncpg.Connection, *, worker_id: str, lease: float, limit: int
) -> list[asyncpg.Record]:
    """Lease up to `limit` due deliveries that have no Braze object yet to `worker_id`."""
    rows: list[asyncpg.Record] = await connection.fetch(_CLAIM, worker_id, lease, limit)
    return rows


async def settle(
    connection: asyncpg.Connection, delivery_id: int, *, status: str, attributes: str | None,
    braze_user_key: str | None, skip_reason: str | None, message: str | None,
    next_at: datetime, counts: bool, worker_id: str, outcome: str,
) -> None:  # fmt: skip
    """Settle one delivery this worker still leases and log the attempt; a lost lease is a no-op."""
    await connection.execute(
        _SETTLE, delivery_id, status, attributes, braze_user_key, skip_reason, message, next_at,
        1 if counts else 0, worker_id, outcome, message,
    )  # fmt: skip
