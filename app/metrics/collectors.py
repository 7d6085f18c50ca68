"""What Postgres holds, read at scrape time: the queue, deliveries by status, the Braze gate.

Any process (and any number of them) reports the same numbers because they come from the one
database, not from process memory. The reads are cheap (the queue is counted through its
partial indexes, each count capped at QUEUE_COUNT_CAP; the gate is one row) and cached for
`max_age` seconds, so a storm of scrapes costs one query per process per interval. Each read
runs under a statement timeout; when the database does not answer, only
`voucher_relay_database_up 0` is reported.

Counting every delivery by status is the one read that grows with retention (a sequential
scan: seconds at ten million rows). It runs on its own connection under its own timeout,
started by a scrape that finds it stale; the scrape waits for it only briefly (a young table
is counted within that wait) and otherwise reports the last count. A count is stale after
`table_max_age` seconds; one that took longer than the scrape's wait only after a hundred
times what it took, so the counts never cost more than 1% of one Postgres core, whatever the
retention.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.delivery.store.hold import NOT_STOPPED, PAUSED

logger = logging.getLogger(__name__)

STATEMENT_TIMEOUT_MS = 2000
TABLE_COUNTS_MAX_AGE = 60.0
# How long a scrape waits for a table count it started; the count's own statement timeout.
TABLE_COUNT_WAIT_SECONDS = 0.5
TABLE_COUNT_TIMEOUT_MS = 300_000
# A count is not started again before this many times its own duration has passed.
TABLE_COUNT_PERIOD_FACTOR = 100
GATE_STATES = ("open", "paused", "blocked")

# A scrape costs what it must whatever the backlog (a million waiting after a Braze outage):
# each number is an index-only probe on the partial index of exactly its rows (the queue's,
# never the history; app/delivery/store/claims.py), in index order (so that no statistics make it a
# scan of the table), and counts stop at QUEUE_COUNT_CAP rows. Past the cap the number
# reported is the cap and `voucher_relay_queue_count_capped` says so: "at least 50,000
# waiting" is what an alert needs, and an exact count of a million rows took 0.8 s of
# Postgres per scrape (bench scale). A cached exact count refreshed off the scrape path would
# still cost that every period, and be stale when it matters.
QUEUE_COUNT_CAP = 50_000
_TO_SEND = "d.status = 'pending' AND d.attributes IS NOT NULL"
_TO_PUBLISH = "d.status = 'pending' AND d.attributes IS NULL"
_LEASED = "d.status = 'in_flight' AND d.lease_expires_at IS NOT NULL"
# A stable time (statement_timestamp()) bounds the index scans, as in the claims.
_NOW = "d.next_attempt_at <= statement_timestamp()"
# Due is what a claim could take now, so not what a paused distribution has: those rows are
# held (out of the due range) within seconds of a pause, and the few not held yet are counted
# apart through ix_deliveries_waiting_by_distribution and taken off, which keeps the counts
# index-only (a per-row check of the distribution would read every row's heap page).
_PAUSED_DUE = (
    f"d.distribution_id = ANY({PAUSED}) AND d.distribution_id IS NOT NULL"
    f" AND d.status = 'pending' AND {_NOW}"
)


def _capped(where: str, order: str = "d.next_attempt_at") -> str:
    return (
        f"(SELECT count(*) FROM (SELECT FROM deliveries AS d WHERE {where}"
        f" ORDER BY {order} LIMIT :cap) AS c)"
    )


def _oldest(where: str) -> str:
    return (
        f"(SELECT d.next_attempt_at FROM deliveries AS d WHERE {where} AND {_NOW}"
        f" AND {NOT_STOPPED} ORDER BY d.next_attempt_at LIMIT 1)"
    )


_QUEUE = text(f"""
SELECT {_capped(_TO_SEND)} AS to_send, {_capped(_TO_PUBLISH)} AS to_publish,
    {_capped(_LEASED, "d.lease_expires_at")} AS in_flight,
    {_capped(f"{_TO_SEND} AND {_NOW}")} AS due_to_send,
    {_capped(f"{_TO_PUBLISH} AND {_NOW}")} AS due_to_publish,
    {_capped(_PAUSED_DUE, "d.distribution_id, d.next_attempt_at")} AS paused_due,
    extract(epoch FROM clock_timestamp() - least({_oldest(_TO_SEND)}, {_oldest(_TO_PUBLISH)}))
        AS oldest_due_age
""")
DELIVERIES_BY_STATUS = text("""
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
    # A queue count reached QUEUE_COUNT_CAP: the queue numbers are lower bounds.
    capped: bool = False


class DatabaseState:
    """Reads the snapshot, at most once per `max_age` seconds however many scrapes come."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        workspace: str | None,
        max_age: float = 5.0,
        table_max_age: float | None = None,
        table_counts: bool = True,
    ) -> None:
        """`workspace` is the Braze gate to report (None without a Braze key); without
        `table_counts`, deliveries are not counted by status."""
        self._engine = engine
        self._workspace = workspace
        self._max_age = max_age
        self._table_max_age = max(TABLE_COUNTS_MAX_AGE, max_age) if table_max_age is None \
            else table_max_age  # fmt: skip
        self._lock = asyncio.Lock()
        self._snapshot: tuple[float, Snapshot] | None = None
        self._table: dict[tuple[str, str], int] = {}
        # Monotonic time after which the table is counted again.
        self._table_due = 0.0 if table_counts else float("inf")
        self._counting: asyncio.Task[None] | None = None

    async def close(self) -> None:
        """Stop a table count in progress (its statement is canceled with its connection)."""
        if self._counting is not None:
            self._counting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._counting
            self._counting = None

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
        row = (await connection.execute(_QUEUE, {"cap": QUEUE_COUNT_CAP})).one()
        counts = (row.to_send, row.to_publish, row.in_flight, row.due_to_send, row.due_to_publish)
        capped = any(n >= QUEUE_COUNT_CAP for n in counts)
        queue = {"pending": row.to_send + row.to_publish, "in_flight": row.in_flight}
        due = max(0, row.due_to_send + row.due_to_publish - row.paused_due)
        oldest = max(0.0, float(row.oldest_due_age or 0))
        gate = None
        if self._workspace is not None:
            found = (await connection.execute(_GATE, {"workspace": self._workspace})).first()
            gate = GateReading("open") if found is None else GateReading(
                "blocked" if found.blocked else "paused" if found.paused else "open",
                float(found.blocked_seconds), float(found.pause_remaining),
            )  # fmt: skip
        await self._table_counted(now)
        return Snapshot(True, queue, due, oldest, self._table, gate, capped)

    async def _table_counted(self, now: float) -> None:
        """Start a count when the last one is stale, and give it a moment to finish."""
        if self._counting is None and now >= self._table_due:
            # A context of its own: its log lines are not the scrape's request.
            self._counting = asyncio.create_task(
                self._count_table(), name="metrics-table-count", context=contextvars.Context()
            )
        if self._counting is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._counting), TABLE_COUNT_WAIT_SECONDS)

    async def _count_table(self) -> None:
        """Every delivery by status and skip reason. After a failed count none is reported
        (the gauge is left out) until one succeeds, tried again `table_max_age` later."""
        started = time.monotonic()
        try:
            async with self._engine.connect() as connection, connection.begin():
                await connection.execute(
                    text(f"SET LOCAL statement_timeout = {TABLE_COUNT_TIMEOUT_MS}")
                )
                rows = await connection.execute(DELIVERIES_BY_STATUS)
                self._table = {(r.status, r.skip_reason): r.n for r in rows}
            took = time.monotonic() - started
            # A table too big to count within a scrape's wait is counted less often.
            slow = took >= TABLE_COUNT_WAIT_SECONDS
            self._table_due = started + max(
                self._table_max_age, TABLE_COUNT_PERIOD_FACTOR * took if slow else 0
            )
        except Exception as exc:  # reported by the absence of the counts, never a failed scrape
            logger.warning("metrics: counting deliveries failed: %s", type(exc).__name__)
            self._table = {}
            self._table_due = started + self._table_max_age
        finally:
            self._counting = None


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
            "voucher_relay_queue_count_capped",
            f"1 when a queue count reached {QUEUE_COUNT_CAP:,} rows and stopped there: the queue "
            "numbers are then lower bounds.",
            value=1 if s.capped else 0,
        )  # fmt: skip
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
