"""Claiming due deliveries for Braze: whole users at a time, never one user in two requests.

One claim is one transaction of a few statements, each an index probe whose cost follows the
batch, not the table, and as few round trips as the rules allow (each one also waits for the
worker's event loop to come back to it):
1. `REAP`, at most once a second per queue: gives back deliveries whose lease expired (a
   worker died or overran), and `DOUBT` marks what they may have sent as uncertain in
   attribute_state in the same transaction: the next claim must not trust "unchanged" for
   those attributes, whatever becomes of it.
2. `CANDIDATES` reads a window of the oldest due deliveries and takes a transaction-scoped
   advisory lock per user, lazily, oldest first, until enough are held: two lanes never claim
   the same user at once. Users another claim holds are passed over, and the next round reads
   the window after this one (no head-of-line blocking behind a slow or stuck claim).
3. `CLAIM`, a new statement and so a new snapshot (it sees every claim committed before the
   locks were granted), leases each locked user's due deliveries unless the user already has
   one in flight (another worker's request is on its way).
   The claimed users' attribute_state comes back with it.

Why the plans are stable: each probe has a partial index whose predicate only that probe's
WHERE clause implies (migrations/versions/0013). Postgres can only use a partial index whose
predicate the query implies, so statistics gathered at the wrong moment (the queue empty, say)
cannot make a claim walk another probe's index (a per-user probe walking the whole due index
once per user costs minutes per claim on a churned table).
- `ix_deliveries_waiting_by_user`: status IN (pending, in_flight) AND attributes IS NOT NULL
  AND braze_user_key IS NOT NULL. Only a query with a strict condition on the key (a probe by
  user: `braze_user_key = k`) implies the last part. CLAIM's per-user probe states exactly that
  and no status narrower, so it implies no other index.
- `ix_deliveries_due_to_send`: status = pending AND attributes IS NOT NULL: CANDIDATES, and
  the outage probe and hurry, which name no user (so cannot use the index above).
- `ix_deliveries_due_to_publish`: the publisher's claim (attributes IS NULL): nothing else.
- `ix_deliveries_leased`: status = in_flight AND lease_expires_at IS NOT NULL. REAP's
  `lease_expires_at < ...` implies it (and no index above: no attributes condition); the
  statements that record an answer name the status and the lessee but not the lease time, so
  they can only find their rows by primary key.
The UPDATE's target row is found by primary key: its own conditions (the recheck of a row
changed meanwhile) name no `attributes` condition, so they imply no partial index either.
tests/delivery/test_plans.py checks every hot statement's generic and custom plans on a
churned table whose statistics were gathered at four bad moments.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from app.delivery.budget import timed
from app.delivery.coalesce import FLAG_KEYS, IDENTITY_KEYS, DueDelivery, KnownValue
from app.delivery.store.hold import NOT_STOPPED

logger = logging.getLogger(__name__)

# Expired leases taken back at once: a crashed worker's batches, with room to spare.
REAP_BATCH = 1000
REAP_SECONDS = 1.0
# Rounds of candidates per claim when users are locked or busy elsewhere.
ROUNDS = 4
# Candidate rows read per user wanted: a user usually has a few due deliveries.
ROWS_PER_USER = 4
# The key space of the per-user advisory locks (shared with nothing else).
LOCK_SPACE = 7301
# Before any delivery's next attempt: where the first window starts.
_BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)

REAP = """
WITH expired AS (
    SELECT d.id FROM deliveries AS d
    WHERE d.status = 'in_flight' AND d.lease_expires_at < statement_timestamp()
    ORDER BY d.lease_expires_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE deliveries AS d SET status = 'pending', lease_expires_at = NULL, leased_by = NULL,
    updated_at = clock_timestamp()
FROM expired WHERE d.id = expired.id
RETURNING d.braze_user_key, d.attributes, d.event_time
"""
# Braze may hold these values now, or not: "unchanged" no longer holds for them, and events
# older than the newest of them are stale. A user's first value gets a row without a value.
DOUBT = """
INSERT INTO attribute_state AS s (braze_user_key, attribute, value, event_time, uncertain,
    doubt_event_time, updated_at)
SELECT k, a, NULL, NULL, true, t, clock_timestamp()
FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS u(k, a, t)
ON CONFLICT (braze_user_key, attribute) DO UPDATE SET
    uncertain = true, doubt_event_time = greatest(s.doubt_event_time, excluded.doubt_event_time),
    updated_at = excluded.updated_at
"""
# statement_timestamp(), not clock_timestamp(): a stable value can bound the index scan, so
# the scan stops at the first delivery not yet due instead of filtering every later one (held
# deliveries of paused distributions wait in this index too, in the year 9999). The key is
# compared through coalesce(), which is not strict: the query must not imply the by-user
# index's `braze_user_key IS NOT NULL` (see above). The window is ordered by (time, id) so
# that the next round can start right after it ($3, $4). OFFSET 0 keeps the sorted users in a
# subquery of their own: the lock is tried on them in order, and LIMIT stops trying.
CANDIDATES = f"""
WITH window_rows AS MATERIALIZED (
    SELECT d.id, d.braze_user_key AS k, d.next_attempt_at AS due FROM deliveries AS d
    WHERE d.status = 'pending' AND d.attributes IS NOT NULL
      AND d.next_attempt_at <= statement_timestamp() AND d.next_attempt_at >= $3
      AND (d.next_attempt_at, d.id) > ($3, $4) AND {NOT_STOPPED}
      AND NOT coalesce(d.braze_user_key, '') = ANY($2::text[])
    ORDER BY d.next_attempt_at, d.id
    LIMIT $1
)
SELECT
    ARRAY(
        SELECT u.k FROM (
            SELECT k FROM window_rows GROUP BY k ORDER BY min(due), min(id) OFFSET 0
        ) AS u
        WHERE pg_try_advisory_xact_lock(hashtextextended(u.k, {LOCK_SPACE}))
        LIMIT $5
    ) AS locked,
    (SELECT count(*) FROM window_rows) AS read,
    (SELECT w.due FROM window_rows AS w ORDER BY w.due DESC, w.id DESC LIMIT 1) AS last_due,
    (SELECT w.id FROM window_rows AS w ORDER BY w.due DESC, w.id DESC LIMIT 1) AS last_id
"""
# OFFSET 0 fences the per-user probes: the planner cannot merge them with outer conditions.
# The claimed users' attribute_state comes back in the same result (rows without an id), one
# round trip fewer.
CLAIM = f"""
WITH claimed AS (
    UPDATE deliveries AS d SET
        status = 'in_flight', leased_by = $2, updated_at = clock_timestamp(),
        lease_expires_at = clock_timestamp() + $3 * interval '1 second'
    FROM (
        SELECT w.id FROM (
            SELECT w.id, bool_or(w.status = 'in_flight') OVER (PARTITION BY k.key) AS busy
            FROM unnest($1::text[]) AS k(key)
            CROSS JOIN LATERAL (
                SELECT x.id, x.status FROM deliveries AS x
                WHERE x.braze_user_key = k.key AND x.status IN ('pending', 'in_flight')
                  AND x.attributes IS NOT NULL
                OFFSET 0
            ) AS w
        ) AS w
        WHERE NOT w.busy
    ) AS picked
    WHERE d.id = picked.id
      AND d.status = 'pending' AND d.next_attempt_at <= clock_timestamp() AND {NOT_STOPPED}
    RETURNING d.id, d.braze_user_key, d.attributes, d.event_time, d.force, d.attempts,
        d.created_at, d.trigger
)
SELECT c.id, c.braze_user_key, c.attributes, c.event_time, c.force, c.attempts, c.created_at,
    c.trigger, NULL::text AS attribute, NULL::jsonb AS value, NULL::bool AS uncertain,
    NULL::timestamptz AS doubt_event_time, NULL::timestamptz AS sent_at
FROM claimed AS c
UNION ALL
SELECT NULL, s.braze_user_key, NULL, s.event_time, NULL, NULL, NULL, NULL, s.attribute,
    s.value, s.uncertain, s.doubt_event_time, s.sent_at
FROM (SELECT DISTINCT braze_user_key FROM claimed) AS k
CROSS JOIN LATERAL (
    SELECT * FROM attribute_state AS a WHERE a.braze_user_key = k.braze_user_key OFFSET 0
) AS s
"""


@dataclass(frozen=True)
class ClaimedRows:
    deliveries: list[DueDelivery]
    attempts: dict[int, int]
    known: dict[tuple[str, str], KnownValue]


class Reaping:
    """When a queue next takes back expired leases: at most once every `every` seconds, not
    on every claim (each costs a round trip)."""

    def __init__(self, every: float = REAP_SECONDS) -> None:
        self.every = every
        self._next = 0.0

    def due(self) -> bool:
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self.every
        return True


async def reap_expired_leases(connection: asyncpg.Connection) -> int:
    """Give back deliveries whose lease expired; how many. Run it inside a transaction: their
    attributes' state turns uncertain in it (the worker that held them may have reached Braze
    without recording it, and the claim that takes them next may never reach Braze itself)."""
    async with timed("reap"):
        reaped = await connection.fetch(REAP, REAP_BATCH)
        if not reaped:
            return 0
        doubted = await doubt(
            connection,
            (
                (row["braze_user_key"], name, row["event_time"])
                for row in reaped
                if row["attributes"] is not None
                for name in row["attributes"]
                if name not in IDENTITY_KEYS and name not in FLAG_KEYS
            ),
        )
    logger.warning(
        "took back %d deliveries whose lease expired (a worker stopped or overran while "
        "sending); %d attribute values they may have changed at Braze are sent again",
        len(reaped), doubted,
    )  # fmt: skip
    return len(reaped)


async def doubt(
    connection: asyncpg.Connection, sent: Iterable[tuple[str, str, datetime | None]]
) -> int:
    """Mark (user, attribute, event time) values that may or may not have reached Braze;
    how many attributes."""
    newest: dict[tuple[str, str], datetime | None] = {}
    for user_key, attribute, event_time in sent:
        before = newest.get((user_key, attribute))
        newest[(user_key, attribute)] = (
            event_time if before is None or (event_time and event_time > before) else before
        )
    if newest:
        await connection.execute(
            DOUBT, [k for k, _ in newest], [a for _, a in newest], list(newest.values())
        )
    return len(newest)


@asynccontextmanager
async def claim_transaction(connection: asyncpg.Connection) -> AsyncIterator[None]:
    """A transaction begun in one round trip with its setting. A claim lost in a crash only
    leaves deliveries pending: its commit need not wait for the WAL flush."""
    await connection.execute("BEGIN; SET LOCAL synchronous_commit = off")
    try:
        yield
    except BaseException:
        if not connection.is_closed():
            with contextlib.suppress(Exception):
                await connection.execute("ROLLBACK")
        raise
    await connection.execute("COMMIT")


async def claim_users(
    pool: asyncpg.Pool, *, worker_id: str, lease_seconds: float, users: int, reaping: Reaping
) -> ClaimedRows:
    """Lease the due deliveries of up to `users` Braze users, with their attribute state."""
    async with (
        timed("braze_claim"),
        pool.acquire() as connection,
        claim_transaction(connection),
    ):
        if reaping.due():
            await reap_expired_leases(connection)
        rows = await _claim_rounds(connection, worker_id, lease_seconds, users)
    claimed = [r for r in rows if r["id"] is not None]
    return ClaimedRows(
        [
            DueDelivery(
                r["id"], r["braze_user_key"], r["attributes"], r["event_time"], r["force"],
                created_at=r["created_at"], trigger=r["trigger"],
            )
            for r in claimed
        ],
        {r["id"]: r["attempts"] for r in claimed},
        {
            (r["braze_user_key"], r["attribute"]): KnownValue(
                r["value"], r["event_time"], r["uncertain"], r["doubt_event_time"], r["sent_at"]
            )
            for r in rows
            if r["id"] is None
        },
    )  # fmt: skip


async def _claim_rounds(
    connection: asyncpg.Connection, worker_id: str, lease_seconds: float, users: int
) -> list[asyncpg.Record]:
    claimed: list[asyncpg.Record] = []
    # Users locked here (claimed, or busy with a request in flight): later windows skip them.
    seen: list[str] = []
    after: tuple[datetime, int] = (_BEGINNING, 0)
    claimed_users = 0
    for _ in range(ROUNDS):
        wanted = users - claimed_users
        window = wanted * ROWS_PER_USER
        async with timed("braze_candidates"):
            found = await connection.fetchrow(CANDIDATES, window, seen, *after, wanted)
        keys: list[str] = found["locked"]
        if keys:
            async with timed("braze_claim_rows"):
                rows = await connection.fetch(CLAIM, keys, worker_id, lease_seconds)
            claimed += rows
            claimed_users += len({r["braze_user_key"] for r in rows if r["id"] is not None})
            seen += keys
        # Done when enough users are claimed or nothing is due past this window; otherwise
        # the users of this window were taken elsewhere or busy: look past them.
        if claimed_users >= users or found["read"] < window:
            break
        after = (found["last_due"], found["last_id"])
    return claimed
