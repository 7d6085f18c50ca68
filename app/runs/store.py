"""The worker's run queries (asyncpg): claim a due run under a lease, store a page of members
with its checkpoint in one transaction, and close runs whose deliveries have all settled."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from app.db.nul import without_nul
from app.db.raw import DATA_ERRORS
from app.delivery.store import runs as run_deliveries
from app.errors import short_error
from app.runs.progress import PROGRESS_SQL, summarize

logger = logging.getLogger(__name__)

# Due: scheduled and its time has come, or running under a lease that expired (a dead worker,
# a wait after Voucherify was unavailable, a resume) while members were still being paged.
_CLAIM = """
UPDATE runs AS r SET status = 'running', leased_by = $1,
    lease_expires_at = clock_timestamp() + $2 * interval '1 second', next_try_at = NULL,
    started_at = coalesce(r.started_at, clock_timestamp()), updated_at = clock_timestamp()
FROM (
    SELECT id FROM runs
    WHERE (status = 'scheduled' AND scheduled_at <= clock_timestamp())
       OR (status = 'running' AND paged_at IS NULL AND lease_expires_at < clock_timestamp())
    ORDER BY scheduled_at
    LIMIT 1
    FOR UPDATE SKIP LOCKED
) AS due
WHERE r.id = due.id
RETURNING r.id, r.distribution_id, r.distribution_version, r.audience, r.audience_size,
    r.checkpoint, r.started_at
"""
_DISTRIBUTION = """
SELECT status, deleted_at FROM distributions WHERE id = $1
"""
# A stored page ends a series of Voucherify failures: the count starts again.
_ADVANCE = """
UPDATE runs SET processed = processed + $3, checkpoint = $4::jsonb, failures = 0, error = NULL,
    lease_expires_at = clock_timestamp() + $5 * interval '1 second', updated_at = clock_timestamp()
WHERE id = $1 AND leased_by = $2 AND status = 'running'
"""
_SIZE = "UPDATE runs SET audience_size = $2, updated_at = clock_timestamp() WHERE id = $1"
_PAGED = """
UPDATE runs SET paged_at = clock_timestamp(), audience_size = processed, leased_by = NULL,
    lease_expires_at = NULL, failures = 0, error = NULL, updated_at = clock_timestamp()
WHERE id = $1 AND leased_by = $2
"""
# The worker stops: any worker may take the run up at once.
_RELEASE = """
UPDATE runs SET lease_expires_at = clock_timestamp(), updated_at = clock_timestamp()
WHERE id = $1 AND leased_by = $2
"""
_FAILED_AGAIN = """
UPDATE runs SET failures = failures + 1, updated_at = clock_timestamp()
WHERE id = $1 AND leased_by = $2
RETURNING failures
"""
# Paging stops; another try once the lease has run out (after `$3` seconds).
_POSTPONE = """
UPDATE runs SET error = $4, next_try_at = clock_timestamp() + $3 * interval '1 second',
    lease_expires_at = clock_timestamp() + $3 * interval '1 second', updated_at = clock_timestamp()
WHERE id = $1 AND leased_by = $2
"""
# `$4`: it gave up on Voucherify being unavailable, and keeps the count of failures that shows
# it (a resume is offered); any other failure is final and clears the count.
_FAIL = """
UPDATE runs SET status = 'failed', error = $3, finished_at = clock_timestamp(), leased_by = NULL,
    lease_expires_at = NULL, next_try_at = NULL, updated_at = clock_timestamp(),
    failures = CASE WHEN $4 THEN failures ELSE 0 END
WHERE id = $1 AND leased_by = $2
"""
_SETTLED = """
SELECT r.id, r.campaign FROM runs AS r
WHERE r.status = 'running' AND r.paged_at IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM deliveries AS d
                  WHERE d.run_id = r.id AND d.status IN ('pending', 'in_flight'))
"""
_DONE = """
UPDATE runs SET status = 'done', counts = $2::jsonb, finished_at = clock_timestamp(),
    updated_at = clock_timestamp()
WHERE id = $1 AND status = 'running'
"""


@dataclass(frozen=True)
class ClaimedRun:
    id: int
    distribution_id: uuid.UUID
    distribution_version: int
    audience: dict[str, Any]
    audience_size: int | None
    checkpoint: dict[str, Any]
    started_at: datetime


@dataclass(frozen=True)
class Member:
    """One audience member's delivery: pending with its envelope, or failed with the reason."""

    key: str
    envelope: dict[str, Any] | None
    failure: str | None = None


class LostLeaseError(Exception):
    """Another worker took the run over (our lease ran out): stop paging it."""


class RunStore:
    def __init__(self, pool: asyncpg.Pool, *, worker_id: str, lease: timedelta) -> None:
        self.pool = pool
        self.worker_id = worker_id
        self._lease = lease.total_seconds()

    async def claim(self) -> ClaimedRun | None:
        row = await self.pool.fetchrow(_CLAIM, self.worker_id, self._lease)
        if row is None:
            return None
        return ClaimedRun(
            row["id"], row["distribution_id"], row["distribution_version"], row["audience"],
            row["audience_size"], row["checkpoint"] or {}, row["started_at"],
        )  # fmt: skip

    async def distribution_state(self, distribution_id: uuid.UUID) -> str:
        """`active`, `paused` or `deleted`."""
        row = await self.pool.fetchrow(_DISTRIBUTION, distribution_id)
        return "deleted" if row is None or row["deleted_at"] is not None else str(row["status"])

    async def set_size(self, run_id: int, size: int) -> None:
        await self.pool.execute(_SIZE, run_id, size)

    async def add_members(
        self, run: ClaimedRun, members: Sequence[Member], *, checkpoint: dict[str, Any]
    ) -> None:
        """Store the members' deliveries and move the checkpoint past them, atomically. A page
        Postgres refuses is stored member by member, the refused ones as failed with the reason:
        failing, the page would be paged again at every lease, for ever."""
        async with self.pool.acquire() as connection, connection.transaction():
            try:
                async with connection.transaction():  # a savepoint
                    await self._insert(connection, run, members)
            except DATA_ERRORS:
                for member in members:
                    await self._insert_alone(connection, run, member)
            status = await connection.execute(
                _ADVANCE, run.id, self.worker_id, len(members), json.dumps(checkpoint),
                self._lease,
            )  # fmt: skip
            if status.endswith(" 0"):
                raise LostLeaseError(f"run {run.id} is no longer ours")

    async def _insert(
        self, connection: asyncpg.Connection, run: ClaimedRun, members: Sequence[Member]
    ) -> None:
        await run_deliveries.insert_members(
            connection, run.distribution_id, run.distribution_version, run.id, run.started_at,
            [m.key for m in members],
            [json.dumps(m.envelope) if m.envelope is not None else None for m in members],
            ["pending" if m.failure is None else "failed" for m in members],
            [m.failure for m in members],
        )  # fmt: skip

    async def _insert_alone(
        self, connection: asyncpg.Connection, run: ClaimedRun, member: Member
    ) -> None:
        try:
            async with connection.transaction():
                await self._insert(connection, run, [member])
        except DATA_ERRORS as exc:
            logger.warning("run %d: member %r refused by Postgres: %s", run.id,
                           without_nul(member.key)[:100], short_error(exc))  # fmt: skip
            failure = f"invalid_customer: the customer's data cannot be stored: {short_error(exc)}"
            refused = Member(without_nul(member.key), None, without_nul(failure))
            await self._insert(connection, run, [refused])

    async def paged(self, run_id: int) -> None:
        await self.pool.execute(_PAGED, run_id, self.worker_id)

    async def release(self, run_id: int) -> None:
        """Give the run back: the next worker takes it up at once, from its checkpoint."""
        await self.pool.execute(_RELEASE, run_id, self.worker_id)

    async def failed_again(self, run_id: int) -> int | None:
        """Count one more failure in a row; the count, None when the run is no longer ours."""
        failures: int | None = await self.pool.fetchval(_FAILED_AGAIN, run_id, self.worker_id)
        return failures

    async def postpone(self, run_id: int, *, seconds: float, error: str) -> None:
        """Stop paging; the next try is due in `seconds` (shown as `next_try_at`)."""
        await self.pool.execute(_POSTPONE, run_id, self.worker_id, seconds, error)

    async def fail(self, run_id: int, error: str, *, resumable: bool = False) -> None:
        """End the run as failed; `resumable` when it gave up on Voucherify being unavailable."""
        await self.pool.execute(_FAIL, run_id, self.worker_id, error, resumable)

    async def finish_settled(self) -> list[int]:
        """Mark done the paged runs with no delivery left on its way, keeping their counts."""
        settled = await self.pool.fetch(_SETTLED)
        if not settled:
            return []
        rows = await self.pool.fetch(PROGRESS_SQL.format(ids="$1::bigint[]"),
                                     [r["id"] for r in settled])  # fmt: skip
        for run in settled:
            counts = summarize(
                [r for r in rows if r["run_id"] == run["id"]], publishes=run["campaign"] is not None
            )
            await self.pool.execute(_DONE, run["id"], json.dumps(counts))
        return [r["id"] for r in settled]
