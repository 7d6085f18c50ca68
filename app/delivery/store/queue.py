"""The outbox queue in Postgres: claiming due deliveries, giving them back, making retries due
early after an outage, and recording what became of them (the statements of that record are in
settle.py).

Claims are leases (app/delivery/store/claims.py): a worker that dies leaves its deliveries
`in_flight` until the lease expires, then the next claim takes them back. Each change recorded
here lands only while this worker still holds the lease.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from app.braze.classify import Kind
from app.braze.client import BrazeCallResult
from app.delivery.coalesce import DueDelivery, KnownValue, UserUpdate
from app.delivery.outcomes import DeliveryChange
from app.delivery.store import settle
from app.delivery.store.claims import Reaping, claim_users, doubt
from app.delivery.store.hold import HELD_UNTIL, NOT_STOPPED

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
      AND next_attempt_at < '{HELD_UNTIL}' AND {NOT_STOPPED}
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
      AND {NOT_STOPPED}
    ORDER BY d.next_attempt_at
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
UPDATE deliveries AS d SET next_attempt_at = clock_timestamp(), updated_at = clock_timestamp()
FROM pick WHERE d.id = pick.id
RETURNING d.id, pick.was
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

    async def record_split(
        self, *, call: BrazeCallResult, started_at: datetime, delivery_ids: list[int]
    ) -> None:
        """A request Braze refused as a whole: audit it; its halves are sent next."""
        async with self.pool.acquire() as connection, connection.transaction():
            request_id = await settle.insert_request(
                connection, call, started_at, worker_id=self.worker_id
            )
            await settle.note_split(
                connection, delivery_ids, request_id, call.classification.message
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
        delivered = {c.delivery_id for c in changes if c.status == "delivered"}
        async with self.pool.acquire() as connection, connection.transaction():
            request_id = None
            if call is not None:
                request_id = await settle.insert_request(
                    connection, call, started_at, worker_id=self.worker_id
                )
            applied = await settle.apply(
                connection, changes, skip_reasons=skip_reasons or {}, omitted=omitted,
                worker_id=self.worker_id, request_id=request_id,
            )  # fmt: skip
            if alone and request_id is not None:
                await settle.note_split(connection, alone, request_id, settle.ALONE)
            await settle.remember(connection, settle.accepted(updates, delivered), confirmed)
            if call is not None and call.kind is Kind.RETRY:
                # A timeout or 5xx: Braze may have applied what was sent, or not.
                await doubt(
                    connection,
                    ((u.braze_user_key, a, t) for u in updates for a, (t, _) in u.sources.items()),
                )
        return applied
