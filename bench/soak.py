"""`make soak`: the relay under faults, with several processes, checked end to end.

One embedded Postgres, two API processes (`serve --no-worker`) and two `worker` processes, the
Braze emulator answering 20% 5xx, 5% 429 and 2% slow (3 s) and going down once for 60 s.
20,000 signed webhooks (10% duplicates, some users' older event posted after a newer one) are
posted across both APIs and retried on any non-2xx like Voucherify does, while workers are
SIGKILLed three times (and restarted) and Postgres is restarted once. Then, once the queue has
settled, it checks that every acknowledged webhook is stored, that nothing is left pending or in
flight, that Braze has every user's newest values, and that Braze never applied a value from an
older event after one from a newer event. Prints the counts; exits 1 when a check fails.

SOAK_SCALE=0.1 (or --scale 0.1) runs a short version: 2,000 webhooks, a 10 s outage.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from bench.events import build_stream
from bench.poster import Posted, post_all
from bench.relay import QUEUE_LEFT, create_distributions, scalar, status_counts
from bench.soak_checks import Report, check
from bench.soak_cluster import Cluster, Interrupted, raise_on_signals

SECRET = "soak-webhook-secret"
TOKEN = "soak-ops-token"
KEY = "soak-braze-key"
# Braze's retry schedule is about a day; the soak's is minutes, long enough (with 16 tries) to
# ride out the outage and the 20% errors without a delivery dying.
RETRY_SCHEDULE = "1s,2s,5s,10s,15s,20s,30s,30s,30s,30s,30s,30s,30s,30s,30s,30s"
ERROR_RATE, RATE_LIMITED, SLOW = 0.20, 0.05, 0.02


@dataclass(frozen=True)
class SoakConfig:
    webhooks: int = 20_000
    users: int = 4_000
    post_seconds: float = 120
    outage_seconds: float = 60
    postgres_down_seconds: float = 5
    settle_timeout: float = 600

    @classmethod
    def scaled(cls, scale: float) -> SoakConfig:
        return cls(
            webhooks=int(20_000 * scale), users=max(20, int(4_000 * scale)),
            post_seconds=max(20.0, 120 * scale), outage_seconds=max(10.0, 60 * scale),
            postgres_down_seconds=5 if scale >= 0.5 else 3,
            settle_timeout=max(240.0, 600 * scale),
        )  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=float(os.environ.get("SOAK_SCALE", 1)))
    parser.add_argument("--webhooks", type=int, help="override the scaled count")
    parser.add_argument("--outage-seconds", type=float, help="override the scaled outage")
    parser.add_argument("--keep", action="store_true", help="keep the folder with the logs")
    args = parser.parse_args()
    config = SoakConfig.scaled(args.scale)
    if args.webhooks:
        config = replace(config, webhooks=args.webhooks, users=max(20, args.webhooks // 5))
    if args.outage_seconds:
        config = replace(config, outage_seconds=args.outage_seconds)

    raise_on_signals()
    folder = Path(tempfile.mkdtemp(prefix="vr-soak-"))
    cluster = Cluster(folder)
    report: Report | None = None
    try:
        report = _soak(cluster, config)
    except (KeyboardInterrupt, Interrupted):
        print("interrupted: stopping every process", file=sys.stderr)
    finally:
        cluster.stop_all()
        keep = args.keep or report is None or not report.passed
        if keep:
            print(f"logs kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    if report is None:
        return 1
    print(report.render())
    return 0 if report.passed else 1


def _soak(cluster: Cluster, config: SoakConfig) -> Report:
    started = time.monotonic()
    stream = build_stream(
        users=config.users, webhooks=config.webhooks, secret=SECRET, run=uuid.uuid4().hex[:6],
        duplicate_fraction=0.10, out_of_order_fraction=0.10,
    )  # fmt: skip
    _say(started, f"{len(stream.webhooks):,} webhooks for {stream.users:,} users "
         f"({stream.duplicates:,} duplicates, {stream.out_of_order:,} out of order)")  # fmt: skip
    database = cluster.start_postgres()
    braze_url = cluster.start_emulator({
        "BENCH_BRAZE_KEY": KEY, "BENCH_BRAZE_RECORD": "1", "BENCH_BRAZE_RATE_LIMIT": "3000",
        "BENCH_BRAZE_LATENCY_MS": "20",
        # Checked after the outage and the 5xx: 5% of all requests.
        "BENCH_BRAZE_RATE_LIMITED_FRACTION": str(RATE_LIMITED / (1 - ERROR_RATE)),
    })  # fmt: skip
    httpx.post(f"{braze_url}/_emulator/faults", json={
        "error_rate": ERROR_RATE, "error_status": 500, "slow_fraction": SLOW, "slow_ms": 3000,
        "latency_ms": 20,
    }).raise_for_status()  # fmt: skip
    env = {
        "DATABASE_URL": database, "VOUCHERIFY_WEBHOOK_SECRET": SECRET,
        "OPS_API_TOKENS": f"soak:write:{TOKEN}", "BRAZE_REST_URL": braze_url,
        "BRAZE_API_KEY": KEY, "RETRY_SCHEDULE": RETRY_SCHEDULE,
        "DELIVERY_LEASE_SECONDS": "30", "BRAZE_TIMEOUT_SECONDS": "10", "LOG_LEVEL": "warning",
    }  # fmt: skip
    ports = [cluster.start_api(name, env) for name in ("api-1", "api-2")]
    workers = {"worker-1": 0, "worker-2": 0}  # name -> generation
    for name in workers:
        cluster.start_worker(f"{name}.0", env)
    create_distributions(ports[0], TOKEN)
    _say(started, f"2 APIs, 2 workers, Braze emulator with faults; posting for "
                  f"{config.post_seconds:.0f} s")  # fmt: skip

    posted: list[Posted] = []

    def post() -> None:
        rate = len(stream.webhooks) / config.post_seconds
        posted.append(
            asyncio.run(post_all(stream.webhooks, ports=ports, connections=16, rate=rate))
        )

    poster = threading.Thread(target=post, daemon=True)
    poster.start()
    chaos = _Chaos(cluster, env, workers, started)
    while_down: list[object] = []
    schedule: list[tuple[float, Callable[[], None]]] = [
        (0.10, lambda: chaos.kill_worker("worker-1")),
        (0.20, lambda: chaos.outage(braze_url, config.outage_seconds)),
        (0.40, lambda: chaos.kill_worker("worker-2")),
        (0.60, lambda: chaos.restart_postgres(config.postgres_down_seconds, while_down)),
        (0.80, lambda: chaos.kill_worker("worker-1")),
    ]
    post_started = time.monotonic()
    for fraction, action in schedule:
        time.sleep(max(0.0, post_started + fraction * config.post_seconds - time.monotonic()))
        action()
    poster.join()
    if not posted:
        raise RuntimeError("the poster failed; see the traceback above")
    outage_over = chaos.outage_ends - time.monotonic()
    _say(started, f"posted: {posted[0].acknowledged:,} acknowledged; "
                  f"outage over in {max(0, outage_over):.0f} s; waiting for the queue")  # fmt: skip
    time.sleep(max(0.0, outage_over))
    settled = _settle(database, started, config.settle_timeout)
    _say(started, "settled" if settled else "NOT settled: checking anyway")
    return check(stream=stream, posted=posted[0], database=database, braze_url=braze_url,
                 chaos=chaos.summary(while_down), seconds=time.monotonic() - started)  # fmt: skip


class _Chaos:
    """The faults the soak injects, each logged with its time."""

    def __init__(
        self, cluster: Cluster, env: dict[str, str], workers: dict[str, int], started: float
    ) -> None:
        self.cluster, self.env, self.workers, self.started = cluster, env, workers, started
        self.kills = 0
        self.outage_ends = 0.0
        self.postgres_restarts = 0

    def kill_worker(self, name: str) -> None:
        self.cluster.kill(f"{name}.{self.workers[name]}")
        self.kills += 1
        _say(self.started, f"SIGKILL {name}; restarting it in 1 s")
        time.sleep(1)
        self.workers[name] += 1
        self.cluster.start_worker(f"{name}.{self.workers[name]}", self.env)

    def outage(self, braze_url: str, seconds: float) -> None:
        httpx.post(f"{braze_url}/_emulator/faults",
                   json={"outage": {"seconds": seconds}}).raise_for_status()  # fmt: skip
        self.outage_ends = time.monotonic() + seconds
        _say(self.started, f"Braze outage for {seconds:.0f} s (every request 503)")

    def restart_postgres(self, down_seconds: float, while_down: list[object]) -> None:
        _say(self.started, f"stopping Postgres for {down_seconds:.0f} s")
        self.cluster.restart_postgres(down_seconds=down_seconds, while_down=while_down)
        self.postgres_restarts += 1
        _say(self.started, f"Postgres is back; /readyz while it was down: {while_down[-1]}")

    def summary(self, while_down: list[object]) -> dict[str, Any]:
        return {"worker_kills": self.kills, "postgres_restarts": self.postgres_restarts,
                "readyz_while_down": while_down}  # fmt: skip


def _settle(database: str, started: float, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    last_said = 0.0
    while time.monotonic() < deadline:
        try:
            if not scalar(database, QUEUE_LEFT):
                return True
        except OSError:
            pass
        if time.monotonic() - last_said > 15:
            _say(started, f"queue: {status_counts(database)}")
            last_said = time.monotonic()
        time.sleep(2)
    return False


def _say(started: float, message: str) -> None:
    print(f"[{time.monotonic() - started:6.1f} s] {message}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
