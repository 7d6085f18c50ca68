"""The Braze gate, shared through Postgres by every worker sending to one workspace:
- a token bucket: at most `rate` requests per second on average, bursts of `capacity`;
- a pause: after a 429, or when X-RateLimit-Remaining runs low, nobody sends until it ends;
- a block: after a configuration error (401/403/404/415) nobody sends; one worker at a time
  probes with a real batch every `probe_interval`, and the first success lifts the block;
- an outage mark: requests failing (5xx, timeouts) with no success in between; the first success
  after two or more of them ends it, and the worker then sends what waits on a retry at once.
  While nothing is due, one worker at a time tries the earliest retry every `probe_interval`.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from app.metrics.registry import observe_gate_wait

_ENSURE = """
INSERT INTO braze_gate (workspace, tokens, refilled_at) VALUES ($1, $2, clock_timestamp())
ON CONFLICT (workspace) DO NOTHING
"""
# Refill by elapsed time, then take one token if there is one and no pause or block is on.
# A token taken and lost in a crash costs nothing: no need to wait for the WAL flush.
_TAKE = """
WITH quick AS (SELECT set_config('synchronous_commit', 'off', true) AS applied)
UPDATE braze_gate SET
    tokens = LEAST($2, tokens + extract(epoch FROM clock_timestamp() - refilled_at) * $3) - 1,
    refilled_at = clock_timestamp()
WHERE workspace = $1
  AND LEAST($2, tokens + extract(epoch FROM clock_timestamp() - refilled_at) * $3) >= 1
  AND (paused_until IS NULL OR paused_until <= clock_timestamp())
  AND (blocked_reason IS NULL OR $4)
  AND (SELECT applied FROM quick) IS NOT NULL
RETURNING tokens
"""
_STATE = """
SELECT tokens, refilled_at, paused_until, blocked_reason, blocked_since, next_probe_at,
       failing_since, clock_timestamp() AS now
FROM braze_gate WHERE workspace = $1
"""
_PAUSE = """
UPDATE braze_gate SET paused_until = GREATEST(coalesce(paused_until, $2), $2) WHERE workspace = $1
"""
_BLOCK = """
UPDATE braze_gate SET blocked_reason = $2,
    blocked_since = coalesce(blocked_since, clock_timestamp()),
    next_probe_at = clock_timestamp() + $3 * interval '1 second'
WHERE workspace = $1
"""
_UNBLOCK = """
UPDATE braze_gate SET blocked_reason = NULL, blocked_since = NULL, next_probe_at = NULL
WHERE workspace = $1 AND blocked_reason IS NOT NULL
RETURNING workspace
"""
_FAILED = """
UPDATE braze_gate SET failing_since = coalesce(failing_since, clock_timestamp()),
    failed_requests = failed_requests + 1
WHERE workspace = $1
"""
# Only one worker wins the end of an outage (and hurries the retries).
_ANSWERED = """
UPDATE braze_gate AS g SET failing_since = NULL, failed_requests = 0,
    next_probe_at = CASE WHEN g.blocked_reason IS NULL THEN NULL ELSE g.next_probe_at END
FROM (SELECT failing_since, failed_requests FROM braze_gate WHERE workspace = $1 FOR UPDATE) AS o
WHERE g.workspace = $1 AND g.failing_since IS NOT NULL
RETURNING o.failing_since, o.failed_requests
"""
# An outage is two failed requests in a row or more: one alone is a blip the schedule handles.
OUTAGE_REQUESTS = 2
# During an outage with nothing due, one worker at a time probes every `probe_interval`
# (the first one that long after the outage began): see `claim_outage_probe`.
_CLAIM_OUTAGE_PROBE = """
UPDATE braze_gate SET next_probe_at = clock_timestamp() + $2 * interval '1 second'
WHERE workspace = $1 AND blocked_reason IS NULL AND failing_since IS NOT NULL
  AND failed_requests >= $3
  AND coalesce(next_probe_at, failing_since + $2 * interval '1 second') <= clock_timestamp()
RETURNING workspace
"""
# Only one worker wins each probe slot.
_CLAIM_PROBE = """
UPDATE braze_gate SET next_probe_at = clock_timestamp() + $2 * interval '1 second'
WHERE workspace = $1 AND blocked_reason IS NOT NULL AND next_probe_at <= clock_timestamp()
RETURNING workspace
"""


def workspace_key(rest_url: str, api_key: str) -> str:
    """Identifies a workspace (its key) without storing the key."""
    digest = hashlib.sha256(api_key.encode()).hexdigest()[:16]
    return f"{rest_url.rstrip('/')}#{digest}"


@dataclass(frozen=True)
class GateState:
    blocked_reason: str | None
    blocked_since: datetime | None
    paused_until: datetime | None
    failing_since: datetime | None = None


class BrazeGate:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        workspace: str,
        requests: int,
        window_seconds: float,
        probe_interval: float = 30.0,
    ) -> None:
        self._pool = pool
        self.workspace = workspace
        self.rate = requests / window_seconds
        # Bursts of a tenth of the window's budget: any window then sees at most 1.1x budget.
        self.capacity = max(1.0, requests / 10)
        self.probe_interval = probe_interval
        self._ready = False
        self._cached: tuple[float, GateState] | None = None

    async def _ensure(self, connection: asyncpg.Connection) -> None:
        if not self._ready:
            await connection.execute(_ENSURE, self.workspace, self.capacity)
            self._ready = True

    async def acquire(self, *, probing: bool = False) -> None:
        """Wait for a request slot. A probe may pass a block, never a pause or the budget."""
        while True:
            async with self._pool.acquire() as connection:
                await self._ensure(connection)
                taken = await connection.fetchval(
                    _TAKE, self.workspace, self.capacity, self.rate, probing
                )
                if taken is not None:
                    return
                state = await connection.fetchrow(_STATE, self.workspace)
            seconds, reason = self._wait(state)
            started = time.monotonic()
            try:
                await asyncio.sleep(seconds)
            finally:  # also when the caller gives up (cancelled mid-wait)
                observe_gate_wait(reason, time.monotonic() - started)

    def _wait(self, state: asyncpg.Record) -> tuple[float, str]:
        """How long to wait, and why: `paused`, `blocked` or `budget`."""
        now: datetime = state["now"]
        if state["paused_until"] is not None and state["paused_until"] > now:
            return min(60.0, float((state["paused_until"] - now).total_seconds())), "paused"
        if state["blocked_reason"] is not None:
            return min(self.probe_interval, 5.0), "blocked"
        elapsed: float = (now - state["refilled_at"]).total_seconds()
        tokens = min(self.capacity, float(state["tokens"]) + elapsed * self.rate)
        return max(0.005, (1 - tokens) / self.rate), "budget"

    async def pause(self, *, until: datetime) -> None:
        async with self._pool.acquire() as connection:
            await self._ensure(connection)
            await connection.execute(_PAUSE, self.workspace, until)

    async def block(self, reason: str) -> None:
        self._cached = None
        async with self._pool.acquire() as connection:
            await self._ensure(connection)
            await connection.execute(_BLOCK, self.workspace, reason[:500], self.probe_interval)

    async def unblock(self) -> bool:
        """Lift a block; True when there was one."""
        self._cached = None
        async with self._pool.acquire() as connection:
            return await connection.fetchval(_UNBLOCK, self.workspace) is not None

    async def failed(self) -> None:
        """A request failed in a way a retry may fix (5xx, timeout, connection error)."""
        self._cached = None
        async with self._pool.acquire() as connection:
            await self._ensure(connection)
            await connection.execute(_FAILED, self.workspace)

    async def answered(self) -> datetime | None:
        """Braze took a request: when an outage (OUTAGE_REQUESTS failed requests in a row or
        more) ends with it, the time it began; otherwise None. Reads the cached state first,
        so that a success costs no statement outside an outage."""
        if (await self.state_cached()).failing_since is None:
            return None
        self._cached = None
        async with self._pool.acquire() as connection:
            row = await connection.fetchrow(_ANSWERED, self.workspace)
        if row is None or row["failed_requests"] < OUTAGE_REQUESTS:
            return None
        since: datetime = row["failing_since"]
        return since

    async def claim_probe(self) -> bool:
        """While blocked: True for the one worker whose turn it is to probe."""
        async with self._pool.acquire() as connection:
            await self._ensure(connection)
            claimed = await connection.fetchval(_CLAIM_PROBE, self.workspace, self.probe_interval)
            return claimed is not None

    async def claim_outage_probe(self) -> bool:
        """During an outage (OUTAGE_REQUESTS failed requests in a row or more): True for the one
        worker whose turn it is to try a waiting retry early. Without probes, the end of an
        outage in a quiet hour would be noticed only at the earliest retry, hours later."""
        async with self._pool.acquire() as connection:
            await self._ensure(connection)
            claimed = await connection.fetchval(
                _CLAIM_OUTAGE_PROBE, self.workspace, self.probe_interval, OUTAGE_REQUESTS
            )
            return claimed is not None

    async def state_cached(self, *, max_age: float = 1.0) -> GateState:
        """The state as read at most `max_age` seconds ago: lanes check it before every claim,
        and a block set by another process may take that long to be seen (the send itself
        would meet the same refusal meanwhile)."""
        now = time.monotonic()
        if self._cached is None or now - self._cached[0] > max_age:
            self._cached = (now, await self.state())
        return self._cached[1]

    async def state(self) -> GateState:
        async with self._pool.acquire() as connection:
            await self._ensure(connection)
            row = await connection.fetchrow(_STATE, self.workspace)
        return GateState(
            row["blocked_reason"], row["blocked_since"], row["paused_until"], row["failing_since"]
        )
