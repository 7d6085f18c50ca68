"""Memory with a deep queue: one `voucher-relay worker` draining 10,000 pending deliveries, then
another draining 1,000,000 (inserted by one generate_series statement, not through HTTP), into
the Braze emulator answering after 50 ms. A worker claims a bounded batch per lane, so its peak
memory must not grow with the backlog: the ratio of the two peaks is the figure."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from bench.drain import FILL, execute
from bench.harness import (
    free_port,
    plain_url,
    private_postgres,
    rss_mb,
    server_process,
    uvicorn_command,
)
from bench.relay import QUEUE_LEFT, scalar

KEY = "bench-braze-key"


def _drain(pending: int, *, braze_url: str, concurrency: int, max_seconds: float) -> dict[str, Any]:
    with private_postgres() as url:
        database = plain_url(url)
        started = time.perf_counter()
        asyncio.run(execute(database, FILL, pending))
        fill_seconds = time.perf_counter() - started
        env = {
            "DATABASE_URL": database, "BRAZE_REST_URL": braze_url, "BRAZE_API_KEY": KEY,
            "BRAZE_CONCURRENCY": str(concurrency), "BRAZE_RATE_LIMIT_REQUESTS": "3000",
            "LOG_LEVEL": "warning",
        }  # fmt: skip
        started = time.perf_counter()
        with server_process([sys.executable, "-m", "app", "worker"], port=None, env=env) as pid:
            # Counting a deep queue costs Postgres: look every 2 s only.
            while (left := int(scalar(database, QUEUE_LEFT))) and (
                time.perf_counter() - started < max_seconds
            ):
                time.sleep(2)
            seconds = time.perf_counter() - started
            peak = rss_mb(pid)  # VmHWM: the highest it has been
    return {
        "pending": pending,
        "fill_seconds": round(fill_seconds, 1),
        "drained": pending - left,
        "seconds": round(seconds, 1),
        "deliveries_per_s": round((pending - left) / seconds, 1),
        "worker_peak_rss_mb": round(peak, 1),
    }


def run(
    *, small: int = 10_000, large: int = 1_000_000, concurrency: int = 8, latency_ms: int = 50,
    max_seconds: float = 300,
) -> dict[str, Any]:  # fmt: skip
    """Drain `small`, then `large` pending deliveries (the large one for at most
    `max_seconds`); compare the worker's peak memory."""
    port = free_port()
    env = {"BENCH_BRAZE_KEY": KEY, "BENCH_BRAZE_LATENCY_MS": str(latency_ms)}
    with server_process(
        [*uvicorn_command("bench.braze_emulator:app", port), "--factory"], port=port, env=env,
        health="/_emulator/faults",
    ):  # fmt: skip
        braze_url = f"http://127.0.0.1:{port}"
        runs = [
            _drain(pending, braze_url=braze_url, concurrency=concurrency, max_seconds=max_seconds)
            for pending in (small, large)
        ]
    return {
        "small": runs[0],
        "large": runs[1],
        "rss_ratio": round(runs[1]["worker_peak_rss_mb"] / runs[0]["worker_peak_rss_mb"], 3),
    }


if __name__ == "__main__":
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    print(json.dumps(run(small=int(10_000 * scale), large=int(1_000_000 * scale)), indent=2))
