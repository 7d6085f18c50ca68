"""Retention: audit rows older than RETENTION_DAYS are pruned in small batches, in the
background. Pending work is never pruned: a delivery not yet settled keeps itself and its event.

Old rows come first in id order, so each batch reads the front of the primary key only.
Order matters: settled deliveries first (their attempts go with them), then finished runs that
no delivery points to any more, Braze requests and replays, then events that no delivery points
to any more. `attribute_state` is not audit but what Braze has: it stays.

A run is pruned once it finished (done, canceled, failed) longer ago than the retention and its
last delivery is gone: deliveries.run_id would be set to NULL (ON DELETE SET NULL), losing which
run a kept delivery came from. Scheduled and running runs are never pruned; the status is
checked again on the row itself, so a run resumed meanwhile stays. A replay whose deliveries
are still being withdrawn stays too: they would lose the replay id the claims skip them by.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

import asyncpg

logger = logging.getLogger(__name__)

BATCH = 1000

_STEPS: tuple[tuple[str, str], ...] = (
    ("deliveries", """
        DELETE FROM deliveries WHERE id IN (
            SELECT id FROM deliveries
            WHERE created_at < $1 AND status IN ('delivered', 'skipped', 'failed', 'dead')
            ORDER BY id LIMIT $2)
    """),
    ("runs", """
        DELETE FROM runs WHERE id IN (
            SELECT r.id FROM runs AS r
            WHERE r.status IN ('done', 'canceled', 'failed')
              AND coalesce(r.finished_at, r.canceled_at) < $1
              AND NOT EXISTS (SELECT 1 FROM deliveries AS d WHERE d.run_id = r.id)
            ORDER BY r.id LIMIT $2)
          AND status IN ('done', 'canceled', 'failed')
    """),
    ("braze_requests", """
        DELETE FROM braze_requests WHERE id IN (
            SELECT id FROM braze_requests WHERE started_at < $1 ORDER BY id LIMIT $2)
    """),
    ("replays", """
        DELETE FROM replays WHERE id IN (
            SELECT id FROM replays
            WHERE requested_at < $1 AND status NOT IN ('queued', 'running') AND NOT withdrawing
            LIMIT $2)
    """),
    ("webhook_events", """
        DELETE FROM webhook_events WHERE id IN (
            SELECT e.id FROM webhook_events AS e
            WHERE e.received_at < $1
              AND NOT EXISTS (SELECT 1 FROM deliveries AS d WHERE d.event_id = e.id)
            ORDER BY e.id LIMIT $2)
    """),
)  # fmt: skip


@dataclass
class Pruned:
    rows: dict[str, int] = field(default_factory=dict)


async def prune(pool: asyncpg.Pool, *, older_than: timedelta, batch: int = BATCH) -> Pruned:
    """Delete what is older than `older_than`, `batch` rows per transaction, until done."""
    pruned = Pruned()
    async with pool.acquire() as connection:
        cutoff = await connection.fetchval("SELECT clock_timestamp() - $1::interval", older_than)
        for table, statement in _STEPS:
            total = 0
            while True:
                status = await connection.execute(statement, cutoff, batch)
                deleted = int(status.split()[-1])
                total += deleted
                if deleted < batch:
                    break
            pruned.rows[table] = total
    if any(pruned.rows.values()):
        logger.info("retention: pruned %s", pruned.rows)
    return pruned
