"""A run's deliveries: one per member of the segment page it stores (asyncpg, the run
executor's transaction). A member already stored (a page done again after a crash) is not
stored twice."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from app.delivery.store.hold import HELD_UNTIL

# A page stored while the distribution is paused is held with the rest of its deliveries.
_MEMBERS = f"""
INSERT INTO deliveries (distribution_id, distribution_version, trigger, run_id, run_member,
    context, event_time, status, last_error, next_attempt_at)
SELECT $1, $2, 'run', $3, m, c::jsonb, $4, s, e,
       CASE WHEN EXISTS (SELECT 1 FROM distributions WHERE id = $1 AND status = 'paused')
            THEN '{HELD_UNTIL}'::timestamptz ELSE clock_timestamp() END
FROM unnest($5::text[], $6::text[], $7::text[], $8::text[]) AS x(m, c, s, e)
ON CONFLICT (run_id, run_member) WHERE run_id IS NOT NULL DO NOTHING
"""


async def insert_members(
    connection: asyncpg.Connection, distribution_id: uuid.UUID, distribution_version: int,
    run_id: int, event_time: datetime, members: list[str], contexts: list[str | None],
    statuses: list[str], errors: list[str | None],
) -> None:  # fmt: skip
    """Pending deliveries of the run's members (held when the distribution is paused); a member
    whose envelope could not be read is stored failed with its error."""
    await connection.execute(
        _MEMBERS, distribution_id, distribution_version, run_id, event_time, members, contexts,
        statuses, errors,
    )  # fmt: skip
