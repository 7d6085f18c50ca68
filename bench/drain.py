"""Drain: N pending deliveries for N users into the Braze emulator answering after 50 ms, by a
`voucher-relay worker` process, next to a bare httpx loop posting the same 75-object batches
at the same concurrency (the baseline), in the same run."""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from typing import Any

import asyncpg
import httpx

from bench.harness import (
    cpu_seconds,
    free_port,
    plain_url,
    postgres_pids,
    private_postgres,
    rss_mb,
    server_process,
    uvicorn_command,
)

KEY = "bench-braze-key"

FILL = """
WITH d AS (
    INSERT INTO distributions (name, triggers, code_source, identity, mapping)
    VALUES ('bench', '{customer.segment.entered}', '{"type": "event"}', '{}', '[]') RETURNING id
)
INSERT INTO deliveries (distribution_id, distribution_version, braze_user_key, attributes,
    event_time)
SELECT d.id, 1, 'external_id:user-' || n,
       jsonb_build_object('external_id', 'user-' || n, 'welcome_code', 'WELCOME-' || n,
                          'welcome_code_expires_at', '2026-12-31T22:59:59.000Z'),
       now()
FROM d, generate_series(1, $1) AS n
"""

# Uses the queue's own partial index, so that watching the drain costs it little.
_LEFT = "SELECT count(*) FROM deliveries WHERE status IN ('pending', 'in_flight')"
_BUSY_SECONDS = """
SELECT extract(epoch FROM (SELECT max(delivered_at) FROM deliveries)
                        - (SELECT min(started_at) FROM braze_requests))
"""


def _objects(users: int) -> list[dict[str, Any]]:
    return [
        {"external_id": f"user-{n}", "welcome_code": f"WELCOME-{n}",
         "welcome_code_expires_at": "2026-12-31T22:59:59.000Z"}
        for n in range(1, users + 1)
    ]  # fmt: skip


async def _bare_loop(base_url: str, users: int, concurrency: int) -> float:
    objects = _objects(users)
    bodies = [
        json.dumps({"attributes": objects[i : i + 75]}, separators=(",", ":")).encode()
        for i in range(0, users, 75)
    ]
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    limits = httpx.Limits(max_connections=concurrency)
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=base_url, limits=limits, headers=headers) as client:

        async def lane() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                (await client.post("/users/track", content=body)).raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(lane() for _ in range(concurrency)))
        return time.perf_counter() - started


async def _count(url: str, sql: str) -> int:
    connection = await asyncpg.connect(url)
    try:
        return int(await connection.fetchval(sql))
    finally:
        await connection.close()


def run(*, users: int = 100_000, concurrency: int = 8, latency_ms: int = 50) -> dict[str, Any]:
    results: dict[str, Any] = {"users": users, "concurrency": concurrency, "latency_ms": latency_ms}
    port = free_port()
    env = {"BENCH_BRAZE_KEY": KEY, "BENCH_BRAZE_LATENCY_MS": str(latency_ms)}
    with server_process(
        [*uvicorn_command("bench.braze_emulator:app", port), "--factory"], port=port, env=env,
        health="/_emulator/faults",
    ) as emulator_pid:  # fmt: skip
        braze_url = f"http://127.0.0.1:{port}"
        seconds = asyncio.run(_bare_loop(braze_url, users, concurrency))
        results["baseline"] = {"seconds": round(seconds, 2),
                               "deliveries_per_s": round(users / seconds, 1)}  # fmt: skip
        httpx.post(f"{braze_url}/_emulator/reset").raise_for_status()
        httpx.post(f"{braze_url}/_emulator/faults", json={"latency_ms": latency_ms})

        with private_postgres() as url:
            database = plain_url(url)
            asyncio.run(execute(database, FILL, users))
            worker_env = {
                "DATABASE_URL": database, "BRAZE_REST_URL": braze_url, "BRAZE_API_KEY": KEY,
                "BRAZE_CONCURRENCY": str(concurrency), "BRAZE_RATE_LIMIT_REQUESTS": "3000",
                "LOG_LEVEL": "warning",
            }  # fmt: skip
            started = time.perf_counter()
            with server_process(
                [sys.executable, "-m", "app", "worker"], port=None, env=worker_env
            ) as worker_pid:
                database_pids = postgres_pids(url)
                cpu_before = cpu_seconds([worker_pid]), cpu_seconds(database_pids)
                peak = 0.0
                while True:
                    left = asyncio.run(_count(database, _LEFT))
                    peak = max(peak, rss_mb(worker_pid))
                    if left == 0:
                        break
                    time.sleep(0.5)
                seconds = time.perf_counter() - started
                worker_cpu = cpu_seconds([worker_pid]) - cpu_before[0]
                # Backends forked since the start count whole; the others from the start.
                database_cpu = cpu_seconds(postgres_pids(url)) - cpu_before[1]
            requests = asyncio.run(_count(database, "SELECT count(*) FROM braze_requests"))
            # From the first request to the last delivery: the worker's start-up is not drain.
            busy = asyncio.run(_fetch(database, _BUSY_SECONDS))
        sent = httpx.get(f"{braze_url}/_emulator/requests").json()
        results["relay"] = {
            "seconds": round(busy, 2),
            "seconds_with_startup": round(seconds, 2),
            "deliveries_per_s": round(users / busy, 1),
            "braze_requests": requests,
            "emulator_requests": len(sent),
            "minimum_requests": math.ceil(users / 75),
            "worker_peak_rss_mb": round(peak, 1),
            "worker_cpu_ms_per_request": round(worker_cpu / requests * 1000, 2),
            "postgres_cpu_ms_per_request": round(database_cpu / requests * 1000, 2),
        }
        results["emulator_peak_rss_mb"] = round(rss_mb(emulator_pid), 1)
    results["throughput_ratio"] = round(
        results["relay"]["deliveries_per_s"] / results["baseline"]["deliveries_per_s"], 3
    )
    return results


async def _fetch(url: str, sql: str) -> float:
    connection = await asyncpg.connect(url)
    try:
        return float(await connection.fetchval(sql))
    finally:
        await connection.close()


async def execute(url: str, sql: str, *args: Any) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(sql, *args)
    finally:
        await connection.close()


if __name__ == "__main__":
    print(json.dumps(run(users=int(sys.argv[1]) if len(sys.argv) > 1 else 100_000), indent=2))
