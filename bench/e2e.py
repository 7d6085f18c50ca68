"""End to end: signed webhooks for many users (several events each) posted to a real
`voucher-relay serve --no-worker` process, delivered by a `voucher-relay worker` process to the
Braze emulator (50 ms answers), all over loopback. Measures the time from the first webhook to
the last attribute at the emulator, Braze requests against the minimum, attributes sent against
attributes that changed, each process's peak memory, and checks every final value."""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
import uuid
from typing import Any

from bench.events import build_stream, changed_attributes, expected_profiles, profile_mismatches
from bench.harness import (
    braze_emulator,
    free_port,
    plain_url,
    private_postgres,
    rss_mb,
    server_process,
)
from bench.poster import post_all
from bench.relay import QUEUE_LEFT, applied_objects, create_distributions, profiles, scalar

SECRET = "bench-webhook-secret"
TOKEN = "bench-ops-token"
KEY = "bench-braze-key"


def run(
    *, users: int = 20_000, webhooks: int = 50_000, connections: int = 64, latency_ms: int = 50
) -> dict[str, Any]:
    stream = build_stream(users=users, webhooks=webhooks, secret=SECRET, run=uuid.uuid4().hex[:6])
    expected = expected_profiles(stream.by_user)
    braze_port, api_port = free_port(), free_port()
    with (
        braze_emulator(braze_port, key=KEY, latency_ms=latency_ms) as emulator_pid,
        private_postgres() as url,
    ):  # fmt: skip
        braze_url, database = f"http://127.0.0.1:{braze_port}", plain_url(url)
        env = {
            "DATABASE_URL": database, "VOUCHERIFY_WEBHOOK_SECRET": SECRET,
            "OPS_API_TOKENS": f"bench:write:{TOKEN}", "BRAZE_REST_URL": braze_url,
            "BRAZE_API_KEY": KEY, "LOG_LEVEL": "warning",
        }  # fmt: skip
        with (
            server_process(
                [sys.executable, "-m", "app", "serve", "--no-worker", "--port", str(api_port)],
                port=api_port, env=env,
            ) as api_pid,
            server_process([sys.executable, "-m", "app", "worker"], port=None, env=env)
            as worker_pid,
        ):  # fmt: skip
            create_distributions(api_port, TOKEN)
            posted = asyncio.run(
                post_all(stream.webhooks, ports=[api_port], connections=connections)
            )
            while scalar(database, QUEUE_LEFT):
                time.sleep(0.5)
            memory = {"api": rss_mb(api_pid), "worker": rss_mb(worker_pid)}
        requests = int(scalar(database, "SELECT count(*) FROM braze_requests"))
        applied = applied_objects(braze_url)
        mismatches = profile_mismatches(expected, profiles(braze_url))
        memory["emulator"] = rss_mb(emulator_pid)

    seconds = max(a.at for a in applied) - posted.started_at
    sent = sum(len(a.attributes) for a in applied)
    changed = changed_attributes(stream.by_user)
    return {
        "users": stream.users, "webhooks": len(stream.webhooks), "connections": connections,
        "latency_ms": latency_ms,
        "acknowledged": posted.acknowledged,
        "post_seconds": round(posted.seconds, 2),
        "intake_rps": round(len(stream.webhooks) / posted.seconds, 1),
        "seconds_to_last_attribute": round(seconds, 2),
        "webhooks_per_s": round(len(stream.webhooks) / seconds, 1),
        "braze_requests": requests,
        "minimum_requests": math.ceil(stream.users / 75),
        "attributes_sent": sent,
        "attributes_changed": changed,
        "users_correct": stream.users - len(mismatches),
        "mismatches": mismatches[:10],
        "peak_rss_mb": {name: round(mb, 1) for name, mb in memory.items()},
    }  # fmt: skip


if __name__ == "__main__":
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    print(json.dumps(run(users=int(20_000 * scale), webhooks=int(50_000 * scale)), indent=2))
