"""Every hot statement probes its own index, whatever the statistics said when it was planned.

The stall this guards against: statistics gathered while the queue was empty made the cached
generic plan of the Braze claim walk the whole due index once per user; once a burst filled
the queue, each claim took minutes. Here a churned table with history gets its statistics at
a bad moment (queue empty, queue full, everything in flight, only codes to publish), each
statement is prepared and planned generically then, on a connection set up as the worker's,
and after a burst fills the queue the plan it really runs (EXPLAIN ANALYZE EXECUTE, rolled
back) must use only its intended indexes and read no more rows than its batch needs. Custom
plans made on the same stale statistics are checked the same way.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import URL

from app.db import migrate
from app.delivery.store import claims, publishing, queue
from app.webhooks import group_commit
from app.worker.runner import create_pool
from tests.postgres import scratch_database

HISTORY = 20_000
BURST_USERS = 5_000
BURST = 20_000
PUBLISHING = 3_000
EXPIRED = 200
BATCH_USERS = 75
PK = "pk_deliveries"


@dataclass(frozen=True)
class Hot:
    """A statement of the hot path, its arguments, and the indexes it may read."""

    name: str
    sql: str
    args: Callable[[dict[str, Any]], list[Any]]
    indexes: frozenset[str]
    # The intake's connections keep the planner's defaults; the worker's do not.
    worker: bool = True


HOT = [
    Hot("reap", claims.REAP, lambda c: [claims.REAP_BATCH],
        frozenset({"ix_deliveries_leased", PK})),
    Hot("doubt", claims.DOUBT,
        lambda c: [c["keys"], ["code"] * len(c["keys"]), [c["since"]] * len(c["keys"])],
        frozenset({"pk_attribute_state"})),
    Hot("braze_candidates", claims.CANDIDATES,
        lambda c: [BATCH_USERS * 4, [], c["beginning"], 0, BATCH_USERS],
        frozenset({"ix_deliveries_due_to_send"})),
    Hot("braze_candidates_next_window", claims.CANDIDATES,
        lambda c: [BATCH_USERS * 4, c["keys"], c["since"], 1000, BATCH_USERS],
        frozenset({"ix_deliveries_due_to_send"})),
    Hot("braze_claim_rows", claims.CLAIM, lambda c: [c["keys"], "plan-test", 60.0],
        frozenset({"ix_deliveries_waiting_by_user", PK, "pk_attribute_state"})),
    Hot("publisher_claim", publishing._CLAIM, lambda c: ["plan-test", 60.0, 10],
        frozenset({"ix_deliveries_due_to_publish", PK})),
    Hot("hurry_retries", queue._HURRY, lambda c: [c["since"], queue.HURRY_BATCH],
        frozenset({"ix_deliveries_due_to_send", PK})),
    Hot("outage_probe", queue._PROBE, lambda c: [], frozenset({"ix_deliveries_due_to_send", PK})),
    Hot("intake_duplicates", group_commit._EXISTING, lambda c: [c["event_ids"], c["event_sources"]],
        frozenset({"uq_webhook_events_voucherify_event_id_source_id"}), worker=False),
]  # fmt: skip

MOMENTS = ("queue empty", "queue full", "all in flight", "only codes to publish")


@pytest.fixture(scope="module")
def planned_database(server_url: URL) -> Iterator[URL]:
    with scratch_database(server_url, prefix="vr_plans") as url:
        migrate.upgrade(url)
        yield url


@pytest.fixture
async def admin(planned_database: URL) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(
        host=planned_database.query.get("host") or planned_database.host,
        port=planned_database.port, user=planned_database.username,
        database=planned_database.database,
    )  # fmt: skip
    yield connection
    await connection.close()


async def _history(admin: asyncpg.Connection) -> uuid.UUID:
    """Months of settled deliveries, churned (dead tuples), with their events and state."""
    await admin.execute(
        "TRUNCATE deliveries, delivery_attempts, webhook_events, attribute_state, distributions"
        " RESTART IDENTITY CASCADE"
    )
    # Statistics change only when this test says so.
    await admin.execute("ALTER TABLE deliveries SET (autovacuum_enabled = off)")
    distribution = uuid.uuid4()
    await admin.execute(
        "INSERT INTO distributions (id, name, triggers, code_source, identity, mapping)"
        " VALUES ($1, 'plans', '{customer.segment.entered}', '{}', '{}', '[]')",
        distribution,
    )
    await admin.execute(
        """
        INSERT INTO webhook_events (voucherify_event_id, source_id, source_object, event_type,
            raw_body, signature_result, outcome)
        SELECT 'evt_' || g, 'src', 'webhook', 'customer.segment.entered', '\\x7b7d', 'valid',
            'matched'
        FROM generate_series(1, $1) AS g
        """,
        HISTORY,
    )
    await admin.execute(
        """
        INSERT INTO deliveries (distribution_id, distribution_version, event_id, braze_user_key,
            attributes, event_time, status)
        SELECT $1, 1, g, 'external_id:old-' || (g % 4000), '{"code": "A"}', now(), 'pending'
        FROM generate_series(1, $2) AS g
        """,
        distribution, HISTORY,
    )  # fmt: skip
    await admin.execute("UPDATE deliveries SET status = 'in_flight'")
    await admin.execute("UPDATE deliveries SET status = 'delivered', delivered_at = now()")
    await admin.execute(
        """
        INSERT INTO attribute_state (braze_user_key, attribute, value, event_time)
        SELECT DISTINCT braze_user_key, 'code', '"A"'::jsonb, now() FROM deliveries
        """
    )
    return distribution


async def _fill(admin: asyncpg.Connection, distribution: uuid.UUID, tag: str) -> None:
    """A burst: deliveries due to send, retries waiting, held ones, codes to publish, and a
    dead worker's expired leases."""
    await admin.execute(
        """
        INSERT INTO deliveries (distribution_id, distribution_version, braze_user_key,
            attributes, event_time, status, next_attempt_at, attempts)
        SELECT $1, 1, 'external_id:' || $3 || '-' || (g % $4), '{"code": "B"}', now(),
            'pending',
            CASE WHEN g % 10 = 0 THEN now() + interval '1 hour'
                 WHEN g % 10 = 1 THEN '9999-01-01' ELSE now() - interval '1 second' END,
            CASE WHEN g % 10 = 0 THEN 1 ELSE 0 END
        FROM generate_series(1, $2) AS g
        """,
        distribution, BURST, tag, BURST_USERS,
    )  # fmt: skip
    await admin.execute(
        """
        INSERT INTO deliveries (distribution_id, distribution_version, braze_user_key, status,
            next_attempt_at)
        SELECT $1, 1, NULL, 'pending', now() - interval '1 second'
        FROM generate_series(1, $2)
        """,
        distribution, PUBLISHING,
    )  # fmt: skip
    await admin.execute(
        """
        UPDATE deliveries SET status = 'in_flight', leased_by = 'dead',
            lease_expires_at = now() - interval '1 minute'
        WHERE id IN (SELECT id FROM deliveries WHERE status = 'pending' AND attributes IS NOT NULL
                     ORDER BY id LIMIT $1)
        """,
        EXPIRED,
    )  # fmt: skip


async def _bad_moment(admin: asyncpg.Connection, distribution: uuid.UUID, moment: str) -> None:
    """Gather statistics with the queue in `moment`'s shape, then settle what it held."""
    if moment != "queue empty":
        await _fill(admin, distribution, "stats")
        if moment == "all in flight":
            await admin.execute(
                "UPDATE deliveries SET status = 'in_flight', lease_expires_at = now()"
                " + interval '1 hour' WHERE status = 'pending'"
            )
        elif moment == "only codes to publish":
            await admin.execute(
                "UPDATE deliveries SET status = 'delivered' WHERE attributes IS NOT NULL"
                " AND status IN ('pending', 'in_flight')"
            )
    await admin.execute("ANALYZE")
    await admin.execute(
        "UPDATE deliveries SET status = 'delivered', lease_expires_at = NULL"
        " WHERE status IN ('pending', 'in_flight')"
    )


def _scans(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if "Relation Name" in node and "Scan" in node["Node Type"]:
        yield node
    for child in node.get("Plans", []):
        yield from _scans(child)


def _problems(hot: Hot, plan: dict[str, Any]) -> list[str]:
    found = []
    for scan in _scans(plan["Plan"]):
        table, index = scan["Relation Name"], scan.get("Index Name")
        if table not in ("deliveries", "attribute_state", "webhook_events"):
            continue
        if index is None or index not in hot.indexes:
            found.append(f"{scan['Node Type']} on {table} using {index}")
        # A probe reads its batch, not the queue: the burst has tens of thousands of rows.
        read = (scan.get("Actual Rows", 0) + scan.get("Rows Removed by Filter", 0)) * scan.get(
            "Actual Loops", 1
        )
        if read > 2_000:
            found.append(f"{scan['Node Type']} on {table} using {index} read {read:.0f} rows")
    return found


async def _explain(
    connection: asyncpg.Connection, hot: Hot, context: dict[str, Any]
) -> dict[str, Any]:
    # EXPLAIN takes no bind parameters: the arguments go in as literals.
    args = ", ".join(_literal(arg) for arg in hot.args(context))
    execute = f"EXECUTE {hot.name}({args})" if args else f"EXECUTE {hot.name}"
    transaction = connection.transaction()
    await transaction.start()
    try:
        text = await connection.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {execute}")
    finally:
        await transaction.rollback()
    plan: dict[str, Any] = json.loads(text)[0]
    return plan


@pytest.mark.parametrize("moment", MOMENTS)
async def test_each_hot_statement_probes_its_own_index_after_statistics_at_a_bad_moment(
    planned_database: URL, admin: asyncpg.Connection, moment: str
) -> None:
    distribution = await _history(admin)
    await _bad_moment(admin, distribution, moment)
    pool = await create_pool(planned_database, size=2, connect_timeout=5)
    problems: dict[str, list[str]] = {}
    try:
        async with pool.acquire() as worker:
            for connection, hots in ((worker, [h for h in HOT if h.worker]),
                                     (admin, [h for h in HOT if not h.worker])):  # fmt: skip
                # Planned while the queue is empty, as a worker starting then would: the
                # generic plan is made now and kept for the connection's life.
                await connection.execute("SET plan_cache_mode = force_generic_plan")
                for hot in hots:
                    await connection.execute(f"PREPARE {hot.name} AS {hot.sql}")
                    await _explain(connection, hot, _context([], []))
            await _fill(admin, distribution, "burst")
            keys = [
                r["braze_user_key"]
                for r in await admin.fetch(
                    "SELECT DISTINCT braze_user_key FROM deliveries WHERE status = 'pending'"
                    " AND attributes IS NOT NULL AND next_attempt_at <= now()"
                    " ORDER BY braze_user_key LIMIT $1",
                    BATCH_USERS,
                )
            ]
            events = [f"evt_{n}" for n in range(1, 101)]
            context = _context(keys, events)
            for mode in ("force_generic_plan", "force_custom_plan"):
                for connection, worker_side in ((worker, True), (admin, False)):
                    await connection.execute(f"SET plan_cache_mode = {mode}")
                    for hot in HOT:
                        if hot.worker is worker_side:
                            plan = await _explain(connection, hot, context)
                            if found := _problems(hot, plan):
                                problems[f"{hot.name} ({mode})"] = found
    finally:
        await pool.close()
    assert problems == {}, json.dumps(problems, indent=1)


def _literal(value: Any) -> str:
    if isinstance(value, list):
        kind = "timestamptz[]" if value and isinstance(value[0], datetime) else "text[]"
        # An empty array takes the type of the statement's parameter.
        return f"ARRAY[{', '.join(map(_literal, value))}]::{kind}" if value else "'{}'"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return f"{_literal(value.isoformat())}::timestamptz"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def _context(keys: list[str], events: list[str]) -> dict[str, Any]:
    return {
        "keys": keys,
        "since": datetime.now(UTC) - timedelta(hours=1),
        "beginning": datetime(1970, 1, 1, tzinfo=UTC),
        "event_ids": events,
        "event_sources": ["src"] * len(events),
    }
