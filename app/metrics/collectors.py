"""What Postgres holds, read at scrape time: the queue, deliveries by status, the Braze gate.

Any process (and any number of them) reports the same numbers because they come from the one
database, not from process memory. The reads are cheap (the queue is counted through the
partial index of due work; the gate is one row) and cached for `max_age` seconds, so a storm of
scrapes costs one query per process per interval. Counting every delivery in the table is
the one read that grows with retention (a sequential scan): it is cached longer, for
`table_max_age` seconds. Each read runs under a statement timeout; when the database does not
answer, only `voucher_relay_database_up 0` is reported.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.delivery.store.hold import NOT_PAUSED

logger = logging.getLogger(__name__)

STATEMENT_TIMEOUT_MS = 2000
TABLE_COUNTS_MAX_AGE = 60.0
GATE_STATES = ("open", "paused", "blocked")

# Due: what a claim could take now, so not what a paused distribution holds. Each branch reads
# one of the queue's partial indexes (app/delivery/store/claims.py): the waiting rows, never the
# history.
_DUE = f"next_attempt_at <= clock_timestamp() AND {NOT_PAUSED}"
_QUEUE = text(f"""
WITH waiting AS (
    SELECT 'pending' AS status, {_DUE} AS due, next_attempt_at FROM deliveries AS d
    WHERE status = 'pending' AND attributes IS NOT NULL
    UNION ALL
    SELECT 'pending', {_DUE}, next_attempt_at FROM deliveries AS d
    WHERE status = 'pending' AND attributes IS NULL
    UNION ALL
    SELECT 'in_flight', false, next_attempt_at FROM deliveries AS d
    WHERE status = 'in_flight' AND lease_expires_at IS NOT NULL
)
SELECT status, count(*) AS n, count(*) FILTER (WHERE due) AS due,
       extract(epoch FROM clock_timestamp() - min(next_attempt_at) FILTER (WHERE due))
           AS oldest_due_age
FROM waiting
GROUP BY status
""")
_TABLE = text("""
SELECT status, coalesce(skip_reason, '') AS skip_reason, count(*) AS n
FROM deliveries GROUP BY 1, 2
""")
_GATE = text("""
SELECT blocked_reason IS NOT NULL AS blocked,
       coalesce(paused_until > clock_timestamp(), false) AS paused,
       coalesce(extract(epoch FROM clock_timestamp() - blocked_since), 0) AS blocked_seconds,
       greatest(0, coalesce(extract(epoch FROM paused_until - clock_timestamp()), 0))
           AS pause_remaining
FROM braze_gate WHERE workspace = :workspace
""")


@dataclass(frozen=True)
class GateReading:
    state: str  # one of GATE_STATES
    blocked_seconds: float = 0.0
    pause_remaining_seconds: float = 0.0


@dataclass(frozen=True)
class Snapshot:
    up: bool
    queue: dict[str, int] = field(default_factory=dict)  # pending / in_flight -> rows
    due: int = 0
    oldest_due_age: float = 0.0
    deliveries: dict[tuple[str, str], int] = field(default_factory=dict)
    gate: GateReading | None = None


class DatabaseState:
    """Reads the snapshot, at most once per `max_age` seconds however many scrapes come."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        workspace: str | None,
        max_age: float = 5.0,
        table_max_age: float | None = None,
    ) -> None:
        """`workspace` is the Braze gate to report (None without a Braze key)."""
        self._engine = engine
        self._workspace = workspace
        self._max_age = max_age
        self._table_max_age = max(TABLE_COUNTS_MAX_AGE, max_age) if table_max_age is None \
            else table_max_age  # fmt: skip
        self._lock = asyncio.Lock()
        self._snapshot: tuple[float, Snapshot] | None = None
        self._table: tuple[float, dict[tuple[str, str], int]] | None = None

    async def read(self) -> Snapshot:
        async with self._lock:  # concurrent scrapes wait for the one read in progress
            now = time.monotonic()
            if self._snapshot is None or now - self._snapshot[0] >= self._max_age:
                self._snapshot = (now, await self._read(now))
            return self._snapshot[1]

    async def _read(self, now: float) -> Snapshot:
        try:
            async with asyncio.timeout(STATEMENT_TIMEOUT_MS / 1000 * 2):
                async with self._engine.connect() as connection, connection.begin():
                    await connection.execute(
                        text(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")
                    )
                    return await self._queries(connection, now)
        except Exception as exc:  # any failure: report the database as down, not a 500
            logger.warning("metrics: reading the database failed: %s", type(exc).__name__)
            return Snapshot(up=False)

    async def _queries(self, connection: AsyncConnection, now: float) -> Snapshot:
        queue: dict[str, int] = {"pending": 0, "in_flight": 0}
        due, oldest = 0, 0.0
        for row in await connection.execute(_QUEUE):
            queue[row.status] = row.n
            due += row.due
            oldest = max(oldest, float(row.oldest_due_age or 0))
        gate = None
        if self._workspace is not None:
            found = (await connection.execute(_GATE, {"workspace": self._workspace})).first()
            gate = GateReading("open") if found is None else GateReading(
                "blocked" if found.blocked else "paused" if found.paused else "open",
                float(found.blocked_seconds), float(found.pause_remaining),
            )  # fmt: skip
        if self._table is None or now - self._table[0] >= self._table_max_age:
            self._table = (now, await self._count_table(connection))
        return Snapshot(True, queue, due, oldest, self._table[1], gate)

    async def _count_table(self, connection: AsyncConnection) -> dict[tuple[str, str], int]:
        """Every delivery by status and skip reason; empty (and tried again `table_max_age`
        later) when the table is too big to count within the statement timeout."""
        try:
            async with connection.begin_nested():
                rows = await connection.execute(_TABLE)
                return {(r.status, r.skip_reason): r.n for r in rows}
        except DBAPIError as exc:
            logger.warning("metrics: counting deliveries failed: %s", type(exc.orig).__name__)
            return {}


class DatabaseCollector(Collector):
    """One snapshot as Prometheus metric families."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[GaugeMetricFamily]:
        s = self.snapshot
        yield GaugeMetricFamily(
            "voucher_relay_database_up", "1 when the metrics' database reads succeeded.",
            value=1 if s.up else 0,
        )  # fmt: skip
        if not s.up:
            return
        queue = GaugeMetricFamily(
            "voucher_relay_queue_deliveries", "Deliveries waiting or being sent, by status.",
            labels=["status"],
        )  # fmt: skip
        for status, n in sorted(s.queue.items()):
            queue.add_metric([status], n)
        yield queue
        yield GaugeMetricFamily(
            "voucher_relay_queue_due_deliveries",
            "Pending deliveries whose next attempt time has come.", value=s.due,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "voucher_relay_queue_oldest_due_age_seconds",
            "How long the oldest due pending delivery has waited past its time (0: none).",
            value=s.oldest_due_age,
        )
        deliveries = GaugeMetricFamily(
            "voucher_relay_deliveries",
            "Deliveries stored (within retention), by status and skip reason.",
            labels=["status", "skip_reason"],
        )
        for (status, reason), n in sorted(s.deliveries.items()):
            deliveries.add_metric([status, reason], n)
        if s.deliveries:
            yield deliveries
        if s.gate is not None:
            yield from _gate_families(s.gate)


def _gate_families(gate: GateReading) -> Iterator[GaugeMetricFamily]:
    state = GaugeMetricFamily(
        "voucher_relay_braze_gate_state",
        "The Braze gate: open, paused (429 or low remaining budget) or blocked (Braze refuses "
        "the key or URL); 1 for the current state.",
        labels=["state"],
    )
    for name in GATE_STATES:
        state.add_metric([name], 1 if gate.state == name else 0)
    yield state
    yield GaugeMetricFamily(
        "voucher_relay_braze_gate_blocked_seconds",
        "How long Braze has refused the configuration (0 when not blocked).",
        value=gate.blocked_seconds,
    )
    yield GaugeMetricFamily(
        "voucher_relay_braze_gate_pause_remaining_seconds",
        "Seconds until the current pause ends (0 when not paused).",
        value=gate.pause_remaining_seconds,
    )
