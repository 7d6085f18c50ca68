"""Claiming due deliveries for Braze: whole users at a time, never one user in two requests.

One claim is one transaction of a few statements, each an index probe whose cost follows the
batch, not the table:
1. `REAP` gives back deliveries whose lease expired (a worker died or overran), marking what
   they may have sent as uncertain in attribute_state in the same transaction: the next claim
   must not trust "unchanged" for those attributes, whatever becomes of it.
2. `CANDIDATES` reads the users of the oldest due deliveries.
3. `LOCK` takes a transaction-scoped advisory lock per user, lazily, until enough are held:
   two lanes never claim the same user at once. Users another claim holds are passed over,
   and the next round looks past them (no head-of-line blocking behind a slow claim).
4. `CLAIM`, a new statement and so a new snapshot (it sees every claim committed before the
   locks were granted), leases each locked user's due deliveries unless the user already has
   one in flight (another worker's request is on its way).

Why the plans are stable: each probe has a partial index whose predicate only that probe's
WHERE clause implies (migrations/versions/0013). Postgres can only use a partial index whose
predicate the query implies, so statistics gathered at the wrong moment (the queue empty, say)
cannot make a claim walk another probe's index: before, the per-user probe of a cached generic
plan walked the whole due index once per user (six minutes per claim on a churned table).
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
tests/delivery/test_plans.py checks every hot statement's generic plan on a churned table
whose statistics were gathered while the queue was empty, and while it was full.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import asyncpg

from app.delivery.budget import timed
from app.delivery.coalesce import FLAG_KEYS, IDENTITY_KEYS, DueDelivery, KnownValue
from app.delivery.hold import NOT_PAUSED

logger = logging.getLogger(__name__)

# Expired leases taken back per claim: a crashed worker's batch, with room to spare.
REAP_BATCH = 1000
# Rounds of candidates per claim when users are locked or busy elsewhere.
ROUNDS = 4
# Candidate rows read per user wanted: a user usually has a few due deliveries.
ROWS_PER_USER = 4
# The key space of the per-user advisory locks (shared with nothing else).
LOCK_SPACE = 7301

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
RETURNING d.braze_user_key, d.attributes
"""
DOUBT = """
UPDATE attribute_state AS s SET uncertain = true, updated_at = clock_timestamp()
FROM unnest($1::text[], $2::text[]) AS u(k, a)
WHERE s.braze_user_key = u.k AND s.attribute = u.a AND NOT s.uncertain
"""
# statement_timestamp(), not clock_timestamp(): a stable value can bound the index scan, so
# the scan stops at the first delivery not yet due instead of filtering every later one (held
# deliveries of paused distributions wait in this index too, in the year 9999). The key is
# compared through coalesce(), which is not strict: the query must not imply the by-user
# index's `braze_user_key IS NOT NULL` (see above).
CANDIDATES = f"""
SELECT k FROM (
    SELECT DISTINCT ON (k) k, due FROM (
        SELECT d.braze_user_key AS k, d.next_attempt_at AS due FROM deliveries AS d
        WHERE d.status = 'pending' AND d.attributes IS NOT NULL
          AND d.next_attempt_at <= statement_timestamp() AND {NOT_PAUSED}
          AND NOT coalesce(d.braze_user_key, '') = ANY($2::text[])
        ORDER BY d.next_attempt_at
        LIMIT $1
    ) AS oldest
    ORDER BY k, due
) AS candidates
ORDER BY due
"""
# A function scan yields the array in order and LIMIT stops pulling rows: locks are tried one
# by one until $2 are held, and the positions returned say which were tried.
LOCK = f"""
SELECT u.k, u.n FROM unnest($1::text[]) WITH ORDINALITY AS u(k, n)
WHERE pg_try_advisory_xact_lock(hashtextextended(u.k, {LOCK_SPACE}))
LIMIT $2
"""
# OFFSET 0 fences the per-user probe: the planner cannot merge it with the outer conditions.
CLAIM = f"""
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
  AND d.status = 'pending' AND d.next_attempt_at <= clock_timestamp() AND {NOT_PAUSED}
RETURNING d.id, d.braze_user_key, d.attributes, d.event_time, d.force, d.attempts,
    d.created_at, d.trigger
"""
KNOWN = """
SELECT s.braze_user_key, s.attribute, s.value, s.event_time, s.uncertain
FROM unnest($1::text[]) AS k(key)
JOIN LATERAL (SELECT * FROM attribute_state WHERE braze_user_key = k.key) AS s ON true
"""


@dataclass(frozen=True)
class ClaimedRows:
    deliveries: list[DueDelivery]
    attempts: dict[int, int]
    known: dict[tuple[str, str], KnownValue]


async def reap_expired_leases(connection: asyncpg.Connection) -> int:
    """Give back deliveries whose lease expired; how many. Their attributes' state turns
    uncertain in the same transaction: the worker that held them may have reached Braze
    without recording it, and the claim that takes them next may never reach Braze itself."""
    async with timed("reap"), connection.transaction():
        reaped = await connection.fetch(REAP, REAP_BATCH)
        if not reaped:
            return 0
        sent = {
            (row["braze_user_key"], name)
            for row in reaped
            if row["attributes"] is not None
            for name in row["attributes"]
            if name not in IDENTITY_KEYS and name not in FLAG_KEYS
        }
        doubted = await connection.execute(DOUBT, [k for k, _ in sent], [a for _, a in sent])
    logger.warning(
        "took back %d deliveries whose lease expired (a worker stopped or overran while "
        "sending); %s attribute values they may have changed at Braze are sent again",
        len(reaped), doubted.split()[-1],
    )  # fmt: skip
    return len(reaped)


async def claim_users(
    pool: asyncpg.Pool, *, worker_id: str, lease_seconds: float, users: int
) -> ClaimedRows:
    """Lease the due deliveries of up to `users` Braze users, with their attribute state."""
    async with timed("braze_claim"), pool.acquire() as connection, connection.transaction():
        # A claim lost in a crash only leaves the deliveries pending: no need to wait for
        # the WAL flush.
        await connection.execute("SET LOCAL synchronous_commit = off")
        await reap_expired_leases(connection)
        rows = await _claim_rounds(connection, worker_id, lease_seconds, users)
    if not rows:
        return ClaimedRows([], {}, {})
    async with pool.acquire() as connection, timed("known_values"):
        known_rows = await connection.fetch(KNOWN, sorted({r["braze_user_key"] for r in rows}))
    return ClaimedRows(
        [
            DueDelivery(
                r["id"], r["braze_user_key"], r["attributes"], r["event_time"], r["force"],
                created_at=r["created_at"], trigger=r["trigger"],
            )
            for r in rows
        ],
        {r["id"]: r["attempts"] for r in rows},
        {
            (r["braze_user_key"], r["attribute"]): KnownValue(
                r["value"], r["event_time"], r["uncertain"]
            )
            for r in known_rows
        },
    )  # fmt: skip


async def _claim_rounds(
    connection: asyncpg.Connection, worker_id: str, lease_seconds: float, users: int
) -> list[asyncpg.Record]:
    claimed: list[asyncpg.Record] = []
    # Users claimed, busy, locked by another claim, or with nothing due after all: the next
    # round's candidates look past them.
    seen: list[str] = []
    claimed_users = 0
    for _ in range(ROUNDS):
        wanted = users - claimed_users
        async with timed("braze_candidates"):
            candidates = [
                r["k"] for r in await connection.fetch(CANDIDATES, wanted * ROWS_PER_USER, seen)
            ]
        if not candidates:
            break
        async with timed("braze_lock"):
            locked = await connection.fetch(LOCK, candidates, wanted)
        keys = [r["k"] for r in locked]
        # Every candidate up to the last one locked was tried; all were when fewer were locked
        # than wanted.
        tried = candidates if len(keys) < wanted else candidates[: locked[-1]["n"]]
        seen += tried
        if keys:
            async with timed("braze_claim_rows"):
                rows = await connection.fetch(CLAIM, keys, worker_id, lease_seconds)
            claimed += rows
            claimed_users += len({r["braze_user_key"] for r in rows})
        if claimed_users >= users:
            break
    return claimed
