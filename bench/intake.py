"""Intake: signed webhooks at 64 connections into voucher-relay, and into a bare FastAPI
endpoint on the same uvicorn stack that answers 202 without storing (the baseline)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

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
from bench.loadgen import LoadResult, run_load
from tests.factories import distribution_body, sample

SECRET = "bench-webhook-secret"
TOKEN = "bench-ops-token"


def summarize(result: LoadResult) -> dict[str, Any]:
    return {
        "requests": result.requests,
        "errors": result.errors,
        "statuses": {str(k): v for k, v in sorted(result.statuses.items())},
        "seconds": round(result.seconds, 1),
        "throughput_rps": round(result.throughput, 1),
        "p50_ms": round(result.percentile(0.50), 2),
        "p99_ms": round(result.percentile(0.99), 2),
    }


def post_load(
    port: int, *, connections: int, seconds: float, trigger: str = "customer.segment.entered",
    bodies: Sequence[tuple[bytes, str]] | None = None,
) -> LoadResult:  # fmt: skip
    """Signed webhooks of `trigger`'s sample, a new event and customer each (or `bodies` in a
    cycle), for `seconds`."""
    return asyncio.run(
        run_load(
            host="127.0.0.1", port=port, path="/webhooks/voucherify",
            template=sample(trigger), secret=SECRET.encode(),
            connections=connections, seconds=seconds, bodies=bodies,
        )
    )  # fmt: skip


def run(*, seconds: float, connections: int = 64) -> dict[str, Any]:
    results: dict[str, Any] = {"connections": connections}

    port = free_port()
    with server_process(uvicorn_command("bench.bare_app:app", port), port=port, env={}) as pid:
        post_load(port, connections=connections, seconds=2)  # warm-up
        server_cpu = cpu_seconds([pid])
        load = post_load(port, connections=connections, seconds=seconds)
        results["baseline"] = summarize(load)
        results["baseline"]["peak_rss_mb"] = round(rss_mb(pid), 1)
        results["baseline"]["server_cpu_ms_per_webhook"] = round(
            (cpu_seconds([pid]) - server_cpu) / load.requests * 1000, 3
        )

    with private_postgres() as url:
        port = free_port()
        env = {
            "DATABASE_URL": plain_url(url),
            "VOUCHERIFY_WEBHOOK_SECRET": SECRET,
            "OPS_API_TOKENS": f"bench:write:{TOKEN}",
            "PORT": str(port),
            "LOG_LEVEL": "warning",
        }
        with server_process([sys.executable, "-m", "app", "serve"], port=port, env=env) as pid:
            import httpx

            # One matching distribution: every webhook creates a delivery, as in production.
            created = httpx.post(
                f"http://127.0.0.1:{port}/api/v1/distributions",
                json=distribution_body(filters={}, consent=None),
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            created.raise_for_status()
            post_load(port, connections=connections, seconds=2)  # warm-up
            database = postgres_pids(url)
            server_cpu, database_cpu = cpu_seconds([pid]), cpu_seconds(database)
            load = post_load(port, connections=connections, seconds=seconds)
            results["relay"] = summarize(load)
            results["relay"]["peak_rss_mb"] = round(rss_mb(pid), 1)
            # Where the CPU goes, per webhook: the baseline needs no database at all.
            results["relay"]["server_cpu_ms_per_webhook"] = round(
                (cpu_seconds([pid]) - server_cpu) / load.requests * 1000, 3
            )
            results["relay"]["postgres_cpu_ms_per_webhook"] = round(
                (cpu_seconds(postgres_pids(url)) - database_cpu) / load.requests * 1000, 3
            )

    base, relay = results["baseline"]["throughput_rps"], results["relay"]["throughput_rps"]
    results["throughput_ratio"] = round(relay / base, 3) if base else None
    return results


if __name__ == "__main__":
    print(json.dumps(run(seconds=float(sys.argv[1]) if len(sys.argv) > 1 else 20), indent=2))
