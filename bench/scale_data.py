"""The scale scenario's databases: 30 days of audit history and a large queue, loaded in bulk.

`loaded_database()` yields the URLs of a loaded database and of a small one with the same
shape, both in one embedded Postgres (so measured side by side on the same server). With
`keep` (SCALE_KEEP=dir) the cluster stays in that directory between runs and a database
already loaded at the same size is reused, not loaded again (the big one takes minutes): the
console's page timings run against it the same way.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from sqlalchemy.engine import URL

from app.db import migrate
from app.db.embedded import EmbeddedPostgres

DISTRIBUTIONS = 50
DAYS = 30
USERS_PER_EVENT = 20  # one Braze user per 20 events of history
EVENT_TYPES = (
    "customer.segment.entered", "customer.voucher.loyalty_card.points_added",
    "voucher.published", "customer.rewarded", "redemption.succeeded",
)  # fmt: skip
# Deliveries per Braze request in the history (a batch of 75 users).
REQUEST_SIZE = 75
# The distribution whose backlog the scenario pauses and resumes: half the waiting rows.
PAUSED_SHARE = 0.5


@dataclass(frozen=True)
class Size:
    events: int
    waiting: int

    @property
    def name(self) -> str:
        return f"scale_{self.events}_{self.waiting}"


@dataclass(frozen=True)
class Loaded:
    url: URL
    size: Size
    # The distribution holding PAUSED_SHARE of the waiting deliveries (to send).
    busy_distribution: str
    load_seconds: float


_DISTRIBUTIONS = f"""
INSERT INTO distributions (id, name, triggers, code_source, identity, mapping)
SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid, 'scale-' || g,
    ARRAY[(ARRAY{list(EVENT_TYPES)})[1 + g % {len(EVENT_TYPES)}]],
    '{{"type": "event"}}', '{{"type": "external_id", "path": "customer.source_id"}}',
    '[{{"source": "voucher.code", "attribute": "code"}}]'
FROM generate_series(0, {DISTRIBUTIONS - 1}) AS g
"""
# Event g was received at a time proportional to g over the last DAYS days: ids and times grow
# together, as in a real inbox. One event in 50 matched nothing, one in 200 failed.
_EVENTS = f"""
INSERT INTO webhook_events (voucherify_event_id, source_id, source_object, event_type,
    customer_id, customer_source_id, event_created_at, received_at, raw_body, signature_result,
    outcome, deliveries_created)
SELECT 'evt_' || g, 'wh_scale', 'webhook', (ARRAY{list(EVENT_TYPES)})[1 + g % {len(EVENT_TYPES)}],
    'cust_' || (g % ($1 / {USERS_PER_EVENT})), 'user-' || (g % ($1 / {USERS_PER_EVENT})),
    t, t, '\\x7b7d', 'valid',
    CASE WHEN g % 200 = 0 THEN 'failed' WHEN g % 50 = 0 THEN 'unmatched' ELSE 'matched' END,
    CASE WHEN g % 50 = 0 THEN 0 ELSE 1 END
FROM generate_series(1, $1) AS g,
    LATERAL (SELECT now() - interval '{DAYS} days' * (1 - g::float8 / $1) AS t) AS at
"""
_REQUESTS = """
INSERT INTO braze_requests (started_at, duration_ms, status_code, kind, objects, request_bytes)
SELECT now() - interval '30 days' * (1 - g::float8 / $1), 40, 201, 'delivered', 75, 9000
FROM generate_series(1, $1) AS g
"""
# One delivery per matched event, settled: mostly delivered, some skipped, failed or dead.
_DELIVERIES = f"""
INSERT INTO deliveries (distribution_id, distribution_version, event_id, trigger, braze_user_key,
    attributes, event_time, status, skip_reason, attempts, next_attempt_at, delivered_at,
    created_at, updated_at)
SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(e.id % {DISTRIBUTIONS}), 12, '0'))::uuid, 1,
    e.id, CASE WHEN e.id % 97 = 0 THEN 'run' ELSE 'webhook' END,
    'external_id:' || e.customer_source_id, '{{"code": "A"}}', e.received_at,
    CASE WHEN e.id % 1000 = 1 THEN 'dead' WHEN e.id % 100 = 3 THEN 'failed'
         WHEN e.id % 10 = 7 THEN 'skipped' ELSE 'delivered' END,
    CASE WHEN e.id % 10 = 7 THEN 'unchanged' END,
    1, e.received_at, e.received_at, e.received_at, e.received_at
FROM webhook_events AS e WHERE e.deliveries_created = 1
"""
_ATTEMPTS = f"""
INSERT INTO delivery_attempts (delivery_id, braze_request_id, attempted_at, outcome)
SELECT d.id, 1 + (d.id / {REQUEST_SIZE}) % $1, d.created_at,
    CASE d.status WHEN 'delivered' THEN 'delivered' WHEN 'skipped' THEN 'skipped'
         ELSE 'dead' END
FROM deliveries AS d
"""
# The backlog: PAUSED_SHARE to send in distribution 0, the rest split between codes to publish
# (no attributes yet) and attributes to send, over the other distributions. Due within the
# last hour, for users of the history and new ones.
_WAITING = f"""
INSERT INTO deliveries (distribution_id, distribution_version, trigger, braze_user_key,
    attributes, event_time, status, next_attempt_at)
SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(
        CASE WHEN g <= $1 * {PAUSED_SHARE} THEN 0 ELSE 1 + g % {DISTRIBUTIONS - 1} END), 12, '0'
    ))::uuid, 1, 'webhook',
    CASE WHEN g > $1 * {PAUSED_SHARE} AND g % 2 = 0 THEN NULL
         ELSE 'external_id:waiting-' || (g % ($1 / 4)) END,
    CASE WHEN g > $1 * {PAUSED_SHARE} AND g % 2 = 0 THEN NULL ELSE '{{"code": "B"}}'::jsonb END,
    now(), 'pending', now() - interval '1 hour' * random()
FROM generate_series(1, $1) AS g
"""


async def _load(url: URL, size: Size) -> None:
    connection = await _connect(url)
    try:
        await connection.execute("SET synchronous_commit = off")
        await connection.execute(_DISTRIBUTIONS)
        await connection.execute(_EVENTS, size.events)
        await connection.execute(_REQUESTS, max(1, size.events // REQUEST_SIZE))
        await connection.execute(_DELIVERIES)
        await connection.execute(_ATTEMPTS, max(1, size.events // REQUEST_SIZE))
        await connection.execute(_WAITING, size.waiting)
        # As a deployment that has run for a while: visibility map set, statistics gathered.
        await connection.execute("VACUUM ANALYZE")
    finally:
        await connection.close()


async def _connect(url: URL) -> asyncpg.Connection:
    return await asyncpg.connect(
        host=url.query.get("host") or url.host, port=url.port, user=url.username,
        database=url.database,
    )  # fmt: skip


async def _prepare(server: URL, size: Size) -> tuple[URL, bool]:
    """The database for `size` on `server`: (url, True) when it was already loaded."""
    admin = await _connect(server)
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", size.name)
        url = server.set(database=size.name)
        if exists:
            check = await _connect(url)
            try:
                loaded = await check.fetchval(
                    "SELECT count(*) FROM pg_tables WHERE tablename = 'scale_loaded'"
                )
            finally:
                await check.close()
            if loaded:
                return url, True
            await admin.execute(f'DROP DATABASE "{size.name}"')
        await admin.execute(f'CREATE DATABASE "{size.name}"')
        return url, False
    finally:
        await admin.close()


def _loaded(server: URL, size: Size) -> Loaded:
    url, reused = asyncio.run(_prepare(server, size))
    started = time.perf_counter()
    migrate.upgrade(url)  # a kept database gets the newest migrations too
    if not reused:
        asyncio.run(_load(url, size))
        asyncio.run(_mark(url, size))
    return Loaded(
        url,
        size,
        "00000000-0000-4000-8000-000000000000",
        0.0 if reused else time.perf_counter() - started,
    )


async def _mark(url: URL, size: Size) -> None:
    connection = await _connect(url)
    try:
        await connection.execute("CREATE TABLE scale_loaded (size jsonb)")
        await connection.execute(
            "INSERT INTO scale_loaded VALUES ($1::jsonb)", json.dumps(size.__dict__)
        )
    finally:
        await connection.close()


@contextmanager
def loaded_databases(sizes: list[Size], *, keep: Path | None = None) -> Iterator[list[Loaded]]:
    """One embedded Postgres holding a loaded database per size (created, migrated, loaded,
    vacuumed and analyzed). With `keep` the cluster lives in that directory and outlives the
    run; a database loaded at the same size before is reused. Otherwise everything is deleted
    afterwards."""
    place = _existing(keep) if keep is not None else tempfile.TemporaryDirectory(prefix="vr-scale-")
    with place as directory:
        server = EmbeddedPostgres(Path(directory))
        url = server.start()
        try:
            yield [_loaded(url, size) for size in sizes]
        finally:
            server.stop()


@contextmanager
def loaded_database(size: Size, *, keep: Path | None = None) -> Iterator[URL]:
    """The URL of one loaded database (see `loaded_databases`): for other measurements, such
    as the console's pages, on the same data."""
    with loaded_databases([size], keep=keep) as [loaded]:
        yield loaded.url


@contextmanager
def _existing(directory: Path) -> Iterator[str]:
    directory.mkdir(parents=True, exist_ok=True)
    yield str(directory)
