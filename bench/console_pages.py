"""Console page speed: every /console page of a loaded database, timed signed in, with the
plan of every query it runs.

    python -m bench.console_pages postgresql://user@host/db [--loads 30]

The database must be migrated and loaded (the scale benchmark's 10-million-event one, say):
this serves the relay against it (`voucher-relay serve --no-worker`, nothing else writing),
signs in with a write token, loads each page `--loads` times over HTTP (p50 and p99 in ms), then
loads each once more in-process while recording its statements, and prints EXPLAIN (ANALYZE,
BUFFERS) of each SELECT. The issue's bar: no page slower than 300 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings, parse_database_url
from app.main import create_app
from bench.harness import free_port, server_process

TOKEN = "bench-console-token"
BAR_MS = 300.0
CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


@dataclass
class PageTiming:
    path: str
    status: int
    millis: list[float]
    plans: list[dict[str, Any]] = field(default_factory=list)

    @property
    def p50(self) -> float:
        return statistics.median(self.millis)

    @property
    def p99(self) -> float:
        ordered = sorted(self.millis)
        return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


async def _sample_ids(database_url: str) -> dict[str, Any]:
    """Ids the detail pages need, each the newest of its table (bounded reads)."""
    connection = await asyncpg.connect(database_url)
    try:
        one = connection.fetchval
        return {
            "delivery": await one("SELECT id FROM deliveries ORDER BY id DESC LIMIT 1"),
            "event": await one("SELECT id FROM webhook_events ORDER BY id DESC LIMIT 1"),
            "customer": await one(
                "SELECT customer_source_id FROM webhook_events WHERE customer_source_id IS NOT "
                "NULL ORDER BY id DESC LIMIT 1"
            ),
            "event_type": await one(
                "SELECT event_type FROM webhook_events ORDER BY id DESC LIMIT 1"
            ),
            "distribution": await one(
                "SELECT id FROM distributions WHERE deleted_at IS NULL ORDER BY created_at LIMIT 1"
            ),
            "replay": await one("SELECT id FROM replays ORDER BY requested_at DESC LIMIT 1"),
            "run": await one("SELECT id FROM runs ORDER BY id DESC LIMIT 1"),
        }
    finally:
        await connection.close()


def page_paths(ids: dict[str, Any]) -> list[str]:
    """Every console page, with the filters an operator uses most."""
    paths = [
        "/console", "/console/distributions", "/console/distributions/new",
        "/console/deliveries", "/console/deliveries?status=failed",
        "/console/deliveries?status=dead&trigger=webhook", "/console/events",
        "/console/events?outcome=failed", "/console/replays", "/console/runs",
    ]  # fmt: skip
    if ids["customer"]:
        paths.append(f"/console/customer?q={ids['customer']}")
    paths.append("/console/customer?q=nobody-at-all@example.com")
    if ids["event_type"]:
        paths.append(f"/console/events?type={ids['event_type']}")
    for kind, path in (("delivery", "deliveries"), ("event", "events"), ("replay", "replays"),
                       ("run", "runs")):  # fmt: skip
        if ids[kind] is not None:
            paths.append(f"/console/{path}/{ids[kind]}")
    if ids["distribution"] is not None:
        paths.append(f"/console/distributions/{ids['distribution']}")
        paths.append(f"/console/deliveries?distribution_id={ids['distribution']}")
    return paths


def _sign_in(client: httpx.Client) -> None:
    response = client.post("/console/sign-in", data={"token": TOKEN})
    if response.status_code != 303:
        raise RuntimeError(f"sign-in refused: {response.status_code} {response.text[:200]}")


def time_pages(base_url: str, paths: list[str], *, loads: int) -> list[PageTiming]:
    """Each page `loads` times after one warm-up load, over HTTP, signed in."""
    timings = []
    with httpx.Client(base_url=base_url, timeout=60) as client:
        _sign_in(client)
        for path in paths:
            client.get(path)
            millis, status = [], 0
            for _ in range(loads):
                started = time.perf_counter()
                response = client.get(path)
                millis.append((time.perf_counter() - started) * 1000)
                status = response.status_code
            timings.append(PageTiming(path, status, millis))
    return timings


async def explain_pages(database_url: str, timings: list[PageTiming]) -> None:
    """Load each page once in-process, recording its statements; EXPLAIN each SELECT."""
    settings = Settings(_env_file=None, ops_api_tokens=f"bench:write:{TOKEN}")
    app = create_app(settings, database_url=parse_database_url(database_url))
    recorded: list[tuple[str, Any]] = []
    async with app.router.lifespan_context(app):
        engine: AsyncEngine = app.state.engine

        def record(_c: Any, _cur: Any, statement: str, params: Any, *_: Any) -> None:
            recorded.append((statement, params))

        event.listen(engine.sync_engine, "before_cursor_execute", record)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            response = await client.post("/console/sign-in", data={"token": TOKEN})
            assert response.status_code == 303, response.text
            for timing in timings:
                recorded.clear()
                await client.get(timing.path)
                statements = [(s, p) for s, p in recorded if s.lstrip().upper().startswith(
                    ("SELECT", "WITH"))]  # fmt: skip
                async with engine.connect() as connection:
                    for statement, params in statements:
                        result = await connection.exec_driver_sql(
                            f"EXPLAIN (ANALYZE, BUFFERS, FORMAT TEXT) {statement}", params
                        )
                        plan = "\n".join(row[0] for row in result)
                        timing.plans.append({"sql": statement, "plan": plan})
        event.remove(engine.sync_engine, "before_cursor_execute", record)


def measure(database_url: str, *, loads: int = 30, explain: bool = True) -> list[PageTiming]:
    """Serve the relay against `database_url` and time (and explain) every console page."""
    ids = asyncio.run(_sample_ids(database_url))
    paths = page_paths(ids)
    port = free_port()
    env = {"DATABASE_URL": database_url, "OPS_API_TOKENS": f"bench:write:{TOKEN}",
           "PORT": str(port), "LOG_LEVEL": "WARNING"}  # fmt: skip
    command = [sys.executable, "-m", "app", "serve", "--no-worker"]
    with server_process(command, port=port, env=env, health="/healthz"):
        timings = time_pages(f"http://127.0.0.1:{port}", paths, loads=loads)
    if explain:
        asyncio.run(explain_pages(database_url, timings))
    return timings


def report(timings: list[PageTiming]) -> str:
    lines = [f"{'page':70} {'status':>6} {'p50 ms':>8} {'p99 ms':>8}"]
    for t in timings:
        flag = "  SLOW" if t.p99 > BAR_MS else ""
        lines.append(f"{t.path[:70]:70} {t.status:>6} {t.p50:8.1f} {t.p99:8.1f}{flag}")
    worst = max(timings, key=lambda t: t.p99)
    lines.append(f"slowest p99: {worst.path} {worst.p99:.1f} ms (bar {BAR_MS:.0f} ms)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("database_url", help="postgresql://... of a migrated, loaded database")
    parser.add_argument("--loads", type=int, default=30, help="loads per page (default 30)")
    parser.add_argument("--no-explain", action="store_true", help="timings only")
    parser.add_argument("--json", help="also write the timings and plans to this file")
    args = parser.parse_args(argv)
    timings = measure(args.database_url, loads=args.loads, explain=not args.no_explain)
    print(report(timings))
    for timing in timings:
        for plan in timing.plans:
            print(f"\n=== {timing.path}\n{plan['sql']}\n{plan['plan']}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump([{"path": t.path, "status": t.status, "p50_ms": t.p50, "p99_ms": t.p99,
                        "plans": t.plans} for t in timings], out, indent=2)  # fmt: skip
    return 0 if all(t.status == 200 and t.p99 <= BAR_MS for t in timings) else 1


if __name__ == "__main__":
    raise SystemExit(main())
