"""Scale: the hot statements and the ops reads on 30 days of history and a million waiting.

Two databases in one embedded Postgres (bench/scale_data.py): the large one (10,000,000
webhook events with their deliveries and attempts over 30 days and 50 distributions, plus
1,000,000 waiting deliveries, codes to publish and attributes to send) and a small one of the
same shape at 1/100. On each, the same statements:
- the Braze claim (`claims.claim_users`, the real function, its deliveries put back after each
  claim, untimed), its per-user busy check and lease alone (`claims.CLAIM` on the users a
  `claims.CANDIDATES` window locked), and the publisher's claim (`publishing.claim`), the last
  two rolled back;
- a scrape of the queue metrics (`collectors.DatabaseState`, uncached);
- every ops list filter and the second page (the page order), through the real API in
  process;
- a pause and a resume of the distribution holding half the waiting rows, answered at once and
  carried out in batches (`queue_change`), while claims run in a loop: the answer's time, the
  time to the end of the change, and the longest claim meanwhile.

SCALE_KEEP=dir keeps the cluster (and reuses databases loaded at the same size).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine

from app.config import Settings
from app.delivery.store import claims, publishing, queue_change
from app.main import create_app
from app.metrics.collectors import DELIVERIES_BY_STATUS, STATEMENT_TIMEOUT_MS, DatabaseState
from app.worker.runner import create_pool
from bench.scale_data import Loaded, Size, loaded_databases

TOKEN = "bench-scale-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
USERS = 75
_PUT_BACK = """
UPDATE deliveries SET status = 'pending', lease_expires_at = NULL, leased_by = NULL
WHERE id = ANY($1::bigint[])
"""


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


async def _timed(action: Callable[[], Awaitable[Any]], rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        await action()
        samples.append(time.perf_counter() - started)
    return samples


# As a worker's queue: expired leases are taken back at most once a second, not every claim.
_REAPING = claims.Reaping()


async def braze_claim(pool: asyncpg.Pool) -> float:
    """One real Braze claim, its deliveries put back (untimed); seconds."""
    started = time.perf_counter()
    claimed = await claims.claim_users(
        pool, worker_id="bench", lease_seconds=60, users=USERS, reaping=_REAPING
    )
    seconds = time.perf_counter() - started
    await pool.execute(_PUT_BACK, [d.id for d in claimed.deliveries])
    return seconds


async def _claims(pool: asyncpg.Pool, rounds: int) -> dict[str, float]:
    braze = [await braze_claim(pool) for _ in range(rounds)]
    busy: list[float] = []
    publish: list[float] = []
    async with pool.acquire() as connection:
        for _ in range(rounds):
            busy.append(await _rolled_back(connection, _busy_check))
            publish.append(await _rolled_back(connection, _publisher_claim))
    return {
        "braze_claim_p99_ms": p99(braze), "busy_user_check_p99_ms": p99(busy),
        "publisher_claim_p99_ms": p99(publish),
    }  # fmt: skip


async def _busy_check(connection: asyncpg.Connection) -> float:
    """The per-user busy check and lease (`CLAIM`) on the users a window locked; seconds."""
    found = await connection.fetchrow(
        claims.CANDIDATES, USERS * claims.ROWS_PER_USER, [], claims._BEGINNING, 0, USERS
    )
    started = time.perf_counter()
    await connection.fetch(claims.CLAIM, found["locked"], "bench", 60.0)
    return time.perf_counter() - started


async def _publisher_claim(connection: asyncpg.Connection) -> float:
    started = time.perf_counter()
    await publishing.claim(connection, worker_id="bench", lease=60.0, limit=10)
    return time.perf_counter() - started


async def _rolled_back(
    connection: asyncpg.Connection, measure: Callable[[asyncpg.Connection], Awaitable[float]]
) -> float:
    transaction = connection.transaction()
    await transaction.start()
    try:
        return await measure(connection)
    finally:
        await transaction.rollback()


async def _metrics(url: URL, rounds: int) -> float:
    """A scrape's reads (`DatabaseState._queries`, uncached, the table counts aside): run as a
    scrape runs them, but a failure is raised, not reported as `database_up 0`."""
    engine = create_async_engine(url)
    state = DatabaseState(engine, workspace=None, max_age=0, table_counts=False)

    async def scrape() -> None:
        async with engine.connect() as connection, connection.begin():
            await connection.execute(text(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"))
            await state._queries(connection, time.monotonic())

    try:
        await scrape()
        return p99(await _timed(scrape, rounds))
    finally:
        await engine.dispose()


async def _table_count(pool: asyncpg.Pool) -> float:
    """What one count behind `voucher_relay_deliveries` takes (a scrape runs it in the
    background, at most every hundred times this); seconds."""
    started = time.perf_counter()
    await pool.fetch(DELIVERIES_BY_STATUS.text)
    return round(time.perf_counter() - started, 2)


def _list_paths(ids: dict[str, Any]) -> dict[str, str]:
    days = 30
    old = f"{ids['old_day']}"
    return {
        "events": "/api/v1/events",
        "events ?type=": "/api/v1/events?type=voucher.published",
        "events ?outcome=failed": "/api/v1/events?outcome=failed",
        "events ?customer=": f"/api/v1/events?customer={ids['customer']}",
        "events ?since= (last hour)": f"/api/v1/events?since={ids['hour_ago']}",
        f"events ?since=&?until= (1 h, {days // 2} days ago)":
            f"/api/v1/events?since={old}&until={ids['old_day_end']}",
        "events page 2": f"/api/v1/events?cursor={ids['events_cursor']}",
        "deliveries": "/api/v1/deliveries",
        "deliveries ?distribution_id=": f"/api/v1/deliveries?distribution_id={ids['distribution']}",
        "deliveries ?status=dead": "/api/v1/deliveries?status=dead",
        "deliveries ?status=pending": "/api/v1/deliveries?status=pending",
        "deliveries ?braze_user_key=": f"/api/v1/deliveries?braze_user_key={ids['user_key']}",
        "deliveries ?trigger=run": "/api/v1/deliveries?trigger=run",
        "deliveries ?event_id=": f"/api/v1/deliveries?event_id={ids['event_id']}",
        "deliveries ?run_id=": "/api/v1/deliveries?run_id=1",
        "deliveries ?since= (last hour)": f"/api/v1/deliveries?since={ids['hour_ago']}",
        f"deliveries ?since=&?until= (1 h, {days // 2} days ago)":
            f"/api/v1/deliveries?since={old}&until={ids['old_day_end']}",
        "deliveries page 2": f"/api/v1/deliveries?cursor={ids['deliveries_cursor']}",
    }  # fmt: skip


async def _ids(pool: asyncpg.Pool, client: httpx.AsyncClient) -> dict[str, Any]:
    row = await pool.fetchrow(
        "SELECT to_char(now() - interval '1 hour', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS hour_ago,"
        " to_char(now() - interval '15 days', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS old_day,"
        " to_char(now() - interval '15 days' + interval '1 hour',"
        '  \'YYYY-MM-DD"T"HH24:MI:SS"Z"\') AS old_day_end,'
        " (SELECT customer_id FROM webhook_events WHERE id = 12345) AS customer,"
        " (SELECT braze_user_key FROM deliveries WHERE event_id = 12345) AS user_key,"
        " (SELECT max(id) / 2 FROM webhook_events) AS event_id"
    )
    ids = dict(row)
    ids["distribution"] = "00000000-0000-4000-8000-000000000007"
    for name in ("events", "deliveries"):
        first = await client.get(f"/api/v1/{name}", headers=HEADERS)
        ids[f"{name}_cursor"] = first.json()["next_cursor"]
    return ids


async def _lists(app: FastAPI, pool: asyncpg.Pool, rounds: int) -> dict[str, Any]:
    transport = httpx.ASGITransport(app=app)
    results: dict[str, Any] = {}
    async with httpx.AsyncClient(transport=transport, base_url="http://scale") as client:
        paths = _list_paths(await _ids(pool, client))
        for name, path in paths.items():
            samples = []
            for _ in range(rounds):
                started = time.perf_counter()
                answer = await client.get(path, headers=HEADERS)
                samples.append(time.perf_counter() - started)
                if answer.status_code != 200:
                    raise RuntimeError(f"{path}: {answer.status_code} {answer.text[:300]}")
            results[name] = round(p99(samples), 1)
    return results


async def _answered(app: FastAPI, method: str, path: str) -> float:
    """Seconds until `app` sent its whole answer; the batches it runs afterwards (background
    tasks) are awaited too, but not counted: httpx's ASGI transport would wait for them."""
    sent = asyncio.Event()
    started = time.perf_counter()
    answered = 0.0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal answered
        if message["type"] == "http.response.start" and message["status"] != 200:
            raise RuntimeError(f"{method} {path}: {message['status']}")
        if message["type"] == "http.response.body" and not message.get("more_body"):
            answered = time.perf_counter() - started
            sent.set()

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": [(b"authorization", f"Bearer {TOKEN}".encode())],
        "client": ("127.0.0.1", 1), "server": ("scale", 80),
    }  # fmt: skip
    await app(scope, receive, send)  # type: ignore[arg-type]
    return answered


async def _queue_change(app: FastAPI, pool: asyncpg.Pool, loaded: Loaded) -> dict[str, Any]:
    """Pause then resume the busiest distribution while claims run; the longest claim."""
    results: dict[str, Any] = {"waiting": await pool.fetchval(
        "SELECT count(*) FROM deliveries WHERE distribution_id = $1 AND status = 'pending'",
        loaded.busy_distribution,
    )}  # fmt: skip
    for action in ("pause", "resume"):
        stop = asyncio.Event()
        latencies: list[float] = []

        async def claiming(stop: asyncio.Event = stop, latencies: list[float] = latencies) -> None:
            while not stop.is_set():
                latencies.append(await braze_claim(pool))

        claimer = asyncio.create_task(claiming())
        started = time.perf_counter()
        path = f"/api/v1/distributions/{loaded.busy_distribution}/{action}"
        answered = await _answered(app, "POST", path)
        # The API ran the batches after its answer (inside `_answered`); what it could not
        # finish, the workers' tending lane would: its step, once.
        await queue_change.continue_changes(pool)
        done = time.perf_counter() - started
        stop.set()
        await claimer
        results[action] = {
            "answered_ms": round(answered * 1000, 1), "seconds": round(done, 1),
            "rows": await pool.fetchval(
                "SELECT queue_changed FROM distributions WHERE id = $1", loaded.busy_distribution
            ),
            "claims": len(latencies), "claim_max_ms": round(max(latencies) * 1000, 1),
            "claim_p99_ms": round(p99(latencies), 1),
        }  # fmt: skip
    return results


async def _measure(loaded: Loaded, rounds: int) -> dict[str, Any]:
    settings = Settings(_env_file=None, ops_api_tokens=f"bench:write:{TOKEN}")
    pool = await create_pool(loaded.url, size=4, connect_timeout=10)
    app = create_app(settings, database_url=loaded.url)
    try:
        async with app.router.lifespan_context(app):
            result: dict[str, Any] = {"events": loaded.size.events, "waiting": loaded.size.waiting,
                                      "load_seconds": round(loaded.load_seconds, 1)}  # fmt: skip
            result.update({k: round(v, 2) for k, v in (await _claims(pool, rounds)).items()})
            result["metrics_scrape_p99_ms"] = round(await _metrics(loaded.url, 20), 1)
            result["lists_p99_ms"] = await _lists(app, pool, max(10, rounds // 5))
            result["queue_change"] = await _queue_change(app, pool, loaded)
            result["deliveries_by_status_count_s"] = await _table_count(pool)
            return result
    finally:
        await pool.close()


def run(*, events: int, waiting: int, rounds: int = 200) -> dict[str, Any]:
    small = Size(max(1000, events // 100), max(100, waiting // 100))
    large = Size(events, waiting)
    keep = os.environ.get("SCALE_KEEP")
    with loaded_databases([small, large], keep=Path(keep) if keep else None) as loaded:
        measured = {"small": asyncio.run(_measure(loaded[0], rounds)),
                    "large": asyncio.run(_measure(loaded[1], rounds))}  # fmt: skip
    s, b = measured["small"], measured["large"]
    measured["braze_claim_ratio"] = round(b["braze_claim_p99_ms"] / s["braze_claim_p99_ms"], 2)
    measured["publisher_claim_ratio"] = round(
        b["publisher_claim_p99_ms"] / s["publisher_claim_p99_ms"], 2
    )
    return measured
