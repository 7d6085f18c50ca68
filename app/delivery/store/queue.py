"""The outbox queue in Postgres: claiming due deliveries, and recording what became of them.

Claims are leases (app/delivery/store/claims.py): a worker that dies leaves its deliveries
`in_flight` until the lease expires, then the next claim takes them back. Each change recorded
here lands only while this worker still holds the lease.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from app.braze.classify import Kind
from app.braze.client import BrazeCallResult
from app.delivery.coalesce import DueDelivery, KnownValue, UserUpdate
from app.delivery.outcomes import DeliveryChange
from app.delivery.store.claims import Reaping, claim_users, doubt
from app.delivery.store.hold import HELD_UNTIL, NOT_PAUSED

_RELEASE = """
UPDATE deliveries SET status = 'pending', lease_expires_at = NULL, leased_by = NULL,
    updated_at = clock_timestamp()
WHERE id = ANY($1::bigint[]) AND status = 'in_flight' AND leased_by = $2
"""
# After a Braze outage: what failed during it and waits on its retry is due now. Sent
# attributes only (a delivery waiting for a code waits on Voucherify, not Braze). In batches:
# an outage can leave a large backlog, and one statement over all of it would hold its row
# locks (and the claims waiting on them) until the end.
_HURRY = f"""
UPDATE deliveries SET next_attempt_at = clock_timestamp(), updated_at = clock_timestamp()
WHERE id IN (
    SELECT id FROM deliveries AS d
    WHERE status = 'pending' AND next_attempt_at > statement_timestamp() AND attempts > 0
      AND attributes IS NOT NULL AND updated_at >= $1
      AND next_attempt_at < '{HELD_UNTIL}' AND {NOT_PAUSED}
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
"""
HURRY_BATCH = 5000
_PUT_BACK = """
UPDATE deliveries AS d SET next_attempt_at = b.was, updated_at = clock_timestamp()
FROM unnest($1::bigint[], $2::timestamptz[]) AS b(id, was)
WHERE d.id = b.id AND d.status = 'pending'
"""
# An outage probe: the earliest retry made due now; `was` is put back if the probe fails.
_PROBE = f"""
WITH pick AS (
    SELECT d.id, d.next_attempt_at AS was FROM deliveries AS d
    WHERE d.status = 'pending' AND d.attempts > 0 AND d.attributes IS NOT NULL
      AND d.next_attempt_at > statement_timestamp() AND d.next_attempt_at < '{HELD_UNTIL}'
      AND {NOT_PAUSED}
    ORDER BY d.next_attempt_at
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
UPDATE deliveries AS d SET next_attempt_at = clock_timestamp(), updated_at = clock_timestamp()
FROM pick WHERE d.id = pick.id
RETURNING d.id, pick.was
"""
_SPLIT_ATTEMPTS = """
INSERT INTO delivery_attempts (delivery_id, braze_request_id, outcome, message)
SELECT id, $2, 'split', $3 FROM unnest($1::bigint[]) AS id
"""
_REQUEST = """
INSERT INTO braze_requests (started_at, duration_ms, status_code, kind, objects, request_bytes,
    response_body, response_headers, error, worker)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10)
RETURNING id
"""
# Each change lands only while this worker still holds the delivery's lease. A lease that
# expired mid-request (another worker took the delivery) keeps the delivery as that worker left
# it, but a request Braze answered is still recorded as an attempt: Braze may have applied it.
_APPLY = """
WITH change AS (
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
                         $6::bool[], $7::text[], $8::text[])
        AS c(id, status, outcome, message, next_attempt_at, counts, skip_reason, omitted)
),
updated AS (
    UPDATE deliveries AS d SET
        status = c.status,
        attempts = d.attempts + CASE WHEN c.counts THEN 1 ELSE 0 END,
        next_attempt_at = coalesce(c.next_attempt_at, d.next_attempt_at),
        last_error = CASE WHEN c.status IN ('delivered') THEN NULL
                          ELSE coalesce(c.message, d.last_error) END,
        skip_reason = coalesce(c.skip_reason, d.skip_reason),
        delivered_at = CASE WHEN c.status = 'delivered' THEN clock_timestamp()
                            ELSE d.delivered_at END,
        force = CASE WHEN c.status = 'pending' THEN d.force ELSE false END,
        lease_expires_at = NULL, leased_by = NULL, updated_at = clock_timestamp()
    FROM change AS c
    WHERE d.id = c.id AND d.status = 'in_flight' AND d.leased_by = $9
    RETURNING d.id, d.replay_id
),
attempted AS (
    INSERT INTO delivery_attempts (delivery_id, braze_request_id, outcome, message, omitted,
        replay_id)
    SELECT c.id, $10, c.outcome,
           CASE WHEN updated.id IS NULL THEN concat_ws(' ', c.message, $11::text)
                ELSE c.message END,
           c.omitted::jsonb, coalesce(updated.replay_id, d.replay_id)
    FROM change AS c
    JOIN deliveries AS d ON d.id = c.id
    LEFT JOIN updated ON updated.id = c.id
    WHERE updated.id IS NOT NULL OR $10::bigint IS NOT NULL
    RETURNING 1
)
SELECT id FROM updated
"""
ALONE = "refused with other deliveries' values in one object: sent again alone"
LEASE_LOST = "(recorded after the lease expired: another worker had taken the delivery)"
# Newer events win even if two writes race: the state never goes back in time, and a value
# without an event time keeps the time recorded. A value Braze just accepted (`sent`) is the
# last write it saw: no doubt is left about it, and it is trusted from now on. A value left out
# as unchanged (`confirmed`) only moves the time on.
_REMEMBER = """
INSERT INTO attribute_state AS s (braze_user_key, attribute, value, event_time, delivery_id,
    sent_at, updated_at)
SELECT k, a, v::jsonb, t, id, CASE WHEN sent THEN clock_timestamp() END, clock_timestamp()
FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::bigint[], $6::bool[])
    AS u(k, a, v, t, id, sent)
ON CONFLICT (braze_user_key, attribute) DO UPDATE SET
    value = excluded.value, event_time = coalesce(excluded.event_time, s.event_time),
    delivery_id = excluded.delivery_id, updated_at = excluded.updated_at,
    sent_at = coalesce(excluded.sent_at, s.sent_at),
    uncertain = s.uncertain AND excluded.sent_at IS NULL,
    doubt_event_time = CASE WHEN excluded.sent_at IS NULL THEN s.doubt_event_time END
WHERE s.event_time IS NULL OR excluded.event_time IS NULL OR excluded.event_time >= s.event_time
"""


@dataclass(frozen=True)
class Claimed:
    deliveries: list[DueDelivery]
    attempts: dict[int, int]


class DeliveryQueue:
    def __init__(self, pool: asyncpg.Pool, *, worker_id: str, lease: timedelta) -> None:
        self.pool = pool
        self.worker_id = worker_id
        self._lease_seconds = lease.total_seconds()
        self._reaping = Reaping()

    async def claim(self, *, users: int) -> tuple[Claimed, dict[tuple[str, str], KnownValue]]:
        """Lease the due deliveries of up to `users` Braze users, with their attribute state
        (app/delivery/store/claims.py)."""
        rows = await claim_users(
            self.pool, worker_id=self.worker_id, lease_seconds=self._lease_seconds, users=users,
            reaping=self._reaping,
        )  # fmt: skip
        return Claimed(rows.deliveries, rows.attempts), rows.known

    async def _insert_request(
        self, connection: asyncpg.Connection, call: BrazeCallResult, started_at: datetime
    ) -> int:
        request_id: int = await connection.fetchval(
            _REQUEST, started_at, call.duration.total_seconds() * 1000, call.status_code,
            str(call.kind), call.object_count, call.request_bytes, call.body or None,
            json.dumps(call.headers), call.error, self.worker_id,
        )  # fmt: skip
        return request_id

    async def record_split(
        self, *, call: BrazeCallResult, started_at: datetime, delivery_ids: list[int]
    ) -> None:
        """A request Braze refused as a whole: audit it; its halves are sent next."""
        async with self.pool.acquire() as connection, connection.transaction():
            request_id = await self._insert_request(connection, call, started_at)
            await connection.execute(
                _SPLIT_ATTEMPTS, delivery_ids, request_id, call.classification.message
            )

    async def hurry_retries(self, *, failed_since: datetime) -> int:
        """Make the deliveries that failed since `failed_since` and wait on a retry due now;
        how many."""
        hurried = 0
        async with self.pool.acquire() as connection:
            while True:
                status = await connection.execute(_HURRY, failed_since, HURRY_BATCH)
                hurried += (done := int(status.split()[-1]))
                if done < HURRY_BATCH:
                    return hurried

    async def probe_retry(self) -> dict[int, datetime]:
        """Make the earliest delivery waiting on a retry due now (an outage probe); its id and
        the retry time to put back if the probe fails ({} when none waits)."""
        async with self.pool.acquire() as connection:
            rows = await connection.fetch(_PROBE)
        return {row["id"]: row["was"] for row in rows}

    async def put_back(self, retry_probe: Mapping[int, datetime]) -> None:
        """An outage probe that did not go out: its delivery waits for its own retry again."""
        async with self.pool.acquire() as connection:
            await connection.execute(_PUT_BACK, list(retry_probe), list(retry_probe.values()))

    async def release(self, delivery_ids: Sequence[int]) -> None:
        """Give leased deliveries back (shutting down before sending them)."""
        if delivery_ids:
            async with self.pool.acquire() as connection:
                await connection.execute(_RELEASE, list(delivery_ids), self.worker_id)

    async def record(
        self,
        *,
        call: BrazeCallResult | None,
        started_at: datetime,
        changes: Sequence[DeliveryChange],
        updates: Sequence[UserUpdate],
        omitted: dict[int, dict[str, list[str]]],
        skip_reasons: dict[int, str] | None = None,
        confirmed: Sequence[tuple[str, str, Any, datetime | None, int]] = (),
        alone: Sequence[int] = (),
    ) -> set[int]:
        """In one transaction: the Braze request, each delivery's new state and attempt row,
        and the attribute state of what Braze accepted (and of the unchanged values a newer
        event `confirmed`). `alone` are deliveries Braze refused together with others in one
        object: they get a `split` attempt here and are sent again alone. Returns the ids of the
        deliveries whose state changed: not those whose lease expired meanwhile (their attempt
        is recorded all the same)."""
        skip_reasons = skip_reasons or {}
        delivered = {c.delivery_id for c in changes if c.status == "delivered"}
        async with self.pool.acquire() as connection, connection.transaction():
            request_id = None
            if call is not None:
                request_id = await self._insert_request(connection, call, started_at)
            applied = await connection.fetch(
                _APPLY,
                [c.delivery_id for c in changes],
                [c.status for c in changes],
                [c.outcome for c in changes],
                [c.message for c in changes],
                [c.next_attempt_at for c in changes],
                [c.counts_as_attempt for c in changes],
                [skip_reasons.get(c.delivery_id) for c in changes],
                [json.dumps(omitted[c.delivery_id]) if c.delivery_id in omitted else None
                 for c in changes],
                self.worker_id,
                request_id,
                LEASE_LOST,
            )  # fmt: skip
            remember = [
                *_accepted(updates, delivered),
                *((k, a, json.dumps(v), t, i, False) for k, a, v, t, i in confirmed),
            ]
            if alone and request_id is not None:
                await connection.execute(_SPLIT_ATTEMPTS, list(alone), request_id, ALONE)
            if remember:
                await connection.execute(_REMEMBER, *(list(c) for c in zip(*remember, strict=True)))
            if call is not None and call.kind is Kind.RETRY:
                # A timeout or 5xx: Braze may have applied what was sent, or not.
                await doubt(
                    connection,
                    ((u.braze_user_key, a, t) for u in updates for a, (t, _) in u.sources.items()),
                )
        return {row["id"] for row in applied}


def _accepted(
    updates: Sequence[UserUpdate], delivered: set[int]
) -> list[tuple[str, str, str, datetime | None, int, bool]]:
    """attribute_state rows of the values Braze accepted."""
    return [
        (update.braze_user_key, attribute, json.dumps(update.object[attribute]), event_time,
         delivery_id, True)
        for update in updates
        for attribute, (event_time, delivery_id) in update.sources.items()
        if delivery_id in delivered
    ]  # fmt: skip
