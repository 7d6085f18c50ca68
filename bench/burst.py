"""Burst: the deployment the six-minute claims were found on, measured end to end.

`voucher-relay serve` in its default shape (the API, and its delivery worker as a child
process; default settings and log level, Braze configured, the emulator answering in 50 ms) on
a database with history: tens of thousands of settled, churned deliveries whose statistics
were gathered while the queue was empty, the moment that made cached claim plans walk the
whole queue. Then 20 s of intake at
64 connections while the worker delivers (20,000 distinct loyalty events for 5,000 users,
posted in a cycle: after the first pass Voucherify-style duplicates, as in the run that found
the stall), and a wave of webhooks for users never seen before.

Reported: intake throughput against a bare FastAPI endpoint in the same run, the time from the
wave's last webhook to its last attribute at Braze, the claims' p99 over the whole run (from
the worker's own histogram), statement timeouts, and the webhook delivery latency p99.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.events import Webhook
from bench.harness import (
    braze_emulator,
    child_pids,
    cpu_seconds,
    free_port,
    plain_url,
    postgres_pids,
    private_postgres,
    server_process,
    uvicorn_command,
)
from bench.intake import post_load, summarize
from bench.poster import post_all
from bench.relay import applied_objects, query, scalar
from tests.factories import sample

SECRET = "bench-webhook-secret"
TOKEN = "bench-ops-token"
KEY = "bench-braze-key"
TRIGGER = "customer.voucher.loyalty_card.points_added"
DISTRIBUTION = {
    "name": "loyalty-balance", "triggers": [TRIGGER], "filters": {}, "consent": None,
    "code_source": {"type": "event"},
    "identity": {"type": "external_id", "path": "customer.source_id"},
    "mapping": [
        {"source": "voucher.loyalty_card.balance", "attribute": "loyalty_balance",
         "format": "integer"},
        {"source": "voucher.code", "attribute": "loyalty_card_code"},
    ],
}  # fmt: skip
# Settled deliveries, churned twice (pending, in flight, delivered): dead tuples, as in a
# deployment that has run for a while. Statistics are then gathered with nothing waiting.
_HISTORY = """
WITH old AS (
    INSERT INTO distributions (name, triggers, code_source, identity, mapping, status)
    VALUES ('retired', '{customer.segment.entered}', '{}', '{}', '[]', 'active')
    RETURNING id
)
INSERT INTO deliveries (distribution_id, distribution_version, braze_user_key, attributes,
    event_time, status)
SELECT old.id, 1, 'external_id:history-' || (g % 20000), '{"code": "A"}', now(), 'pending'
FROM old, generate_series(1, $1) AS g
"""
_CHURN = (
    "UPDATE deliveries SET status = 'in_flight', lease_expires_at = now()",
    "UPDATE deliveries SET status = 'delivered', lease_expires_at = NULL, delivered_at = now()",
    "INSERT INTO attribute_state (braze_user_key, attribute, value, event_time)"
    " SELECT DISTINCT braze_user_key, 'code', '\"A\"'::jsonb, now() FROM deliveries",
    "ANALYZE",
)
WAVE_LEFT = (
    "SELECT count(*) FROM deliveries WHERE braze_user_key LIKE 'external_id:wave-%'"
    " AND status IN ('pending', 'in_flight')"
)


def run(
    *, seconds: float = 20, wave: int = 5_000, history: int = 52_000, connections: int = 64,
    latency_ms: int = 50, users: int = 5_000, events_each: int = 4,
) -> dict[str, Any]:  # fmt: skip
    results: dict[str, Any] = {
        "connections": connections, "latency_ms": latency_ms, "history": history, "wave": wave,
        "users": users, "distinct_webhooks": users * events_each,
    }  # fmt: skip
    port = free_port()
    with server_process(uvicorn_command("bench.bare_app:app", port), port=port, env={}):
        post_load(port, connections=connections, seconds=2)  # warm-up
        results["baseline"] = summarize(post_load(port, connections=connections, seconds=seconds))

    braze_port, api_port = free_port(), free_port()
    with (
        braze_emulator(braze_port, key=KEY, latency_ms=latency_ms) as emulator_pid,
        private_postgres() as url,
    ):
        database, braze_url = plain_url(url), f"http://127.0.0.1:{braze_port}"
        _with_history(database, history)
        env = {
            "DATABASE_URL": database, "VOUCHERIFY_WEBHOOK_SECRET": SECRET,
            "OPS_API_TOKENS": f"bench:write:{TOKEN}", "BRAZE_REST_URL": braze_url,
            "BRAZE_API_KEY": KEY, "PORT": str(api_port),
        }  # fmt: skip
        with server_process(
            [sys.executable, "-m", "app", "serve"], port=api_port, env=env
        ) as serve_pid:
            httpx.post(
                f"http://127.0.0.1:{api_port}/api/v1/distributions", json=DISTRIBUTION,
                headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30,
            ).raise_for_status()  # fmt: skip
            post_load(api_port, connections=connections, seconds=2, trigger=TRIGGER)  # warm-up
            processes = {
                "serve": [serve_pid], "serve's worker": child_pids(serve_pid),
                "postgres": postgres_pids(url), "braze emulator": [emulator_pid],
            }  # fmt: skip
            before = {name: cpu_seconds(pids) for name, pids in processes.items()}
            intake = post_load(api_port, connections=connections, seconds=seconds,
                               bodies=_events(users=users, each=events_each))  # fmt: skip
            results["relay"] = summarize(intake)
            # Where the 2 cores went while the worker delivered (the baseline had them alone).
            results["cpu_share_during_intake"] = {
                name: round((cpu_seconds(pids) - before[name]) / intake.seconds, 2)
                for name, pids in processes.items()
            }
            posted = asyncio.run(post_all(_wave(wave), ports=[api_port], connections=connections))
            last_webhook = posted.started_at + posted.seconds
            deadline = time.monotonic() + 600
            while scalar(database, WAVE_LEFT) and time.monotonic() < deadline:
                time.sleep(0.2)
            results["wave_left_undelivered"] = int(scalar(database, WAVE_LEFT))
            metrics = _scrape(api_port)
        wave_at = [
            a.at for a in applied_objects(braze_url) if a.user.startswith("external_id:wave-")
        ]
        results["queue_at_end"] = {
            r[0]: r[1]
            for r in query(database, "SELECT status, count(*) FROM deliveries GROUP BY 1")
        }
    results["wave_acknowledged"] = posted.acknowledged
    results["wave_delivered"] = len(wave_at)
    results["wave_seconds_to_braze"] = round(max(wave_at) - last_webhook, 2) if wave_at else None
    base, relay = results["baseline"]["throughput_rps"], results["relay"]["throughput_rps"]
    results["throughput_ratio"] = round(relay / base, 3) if base else None
    results["claim_p99_ms"] = _p99_ms(metrics, "voucher_relay_worker_statement_seconds",
                                      {"statement": "braze_claim"})  # fmt: skip
    results["claims"] = _count(metrics, "voucher_relay_worker_statement_seconds",
                               {"statement": "braze_claim"})  # fmt: skip
    results["statement_p99_ms"] = {
        name: _p99_ms(metrics, "voucher_relay_worker_statement_seconds", {"statement": name})
        for name in ("braze_candidates", "braze_claim_rows", "reap", "publisher_claim")
    }
    results["statement_timeouts"] = _sum(metrics, "voucher_relay_worker_statement_timeouts")
    results["delivery_latency_p99_s"] = round(
        _p99_ms(metrics, "voucher_relay_delivery_latency_seconds", {"trigger": "webhook"}) / 1000,
        2,
    )
    return results


def _with_history(database: str, deliveries: int) -> None:
    async def seed() -> None:
        import asyncpg

        connection = await asyncpg.connect(database)
        try:
            await connection.execute(_HISTORY, deliveries)
            for statement in _CHURN:
                await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(seed())


def _events(*, users: int, each: int) -> list[tuple[bytes, str]]:
    """`each` loyalty events for each of `users` users, a minute apart, signed: the intake load
    posts them in a cycle (after the first pass, duplicates), as in the run that found the
    stall (20,000 distinct bodies for 5,000 users)."""
    run, template = uuid.uuid4().hex[:6], sample(TRIGGER)
    bodies = []
    for k in range(each):
        for n in range(users):
            body = json.loads(json.dumps(template))
            stamp = f"2026-12-04T10:{k:02d}:00.000Z"
            body["id"] = f"whs_{run}_{n}_{k}"
            body["event"]["id"], body["event"]["created_at"] = f"evcus_{run}_{n}_{k}", stamp
            body["created_at"] = stamp
            body["data"]["customer"]["source_id"] = f"load-{run}-{n}"
            body["data"]["voucher"]["loyalty_card"]["balance"] = 100 * (k + 1) + n % 97
            raw = json.dumps(body, separators=(",", ":")).encode()
            bodies.append((raw, hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()))
    return bodies


def _wave(count: int) -> list[Webhook]:
    """A webhook for each of `count` users the relay has never seen."""
    run = uuid.uuid4().hex[:6]
    template = sample(TRIGGER)
    webhooks = []
    for n in range(count):
        body = json.loads(json.dumps(template))
        body["id"] = f"whs_{run}_wave_{n}"
        body["event"]["id"] = f"evcus_{run}_wave_{n}"
        body["data"]["customer"]["source_id"] = f"wave-{run}-{n}"
        raw = json.dumps(body, separators=(",", ":")).encode()
        webhooks.append(
            Webhook(raw, hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest(),
                    (body["event"]["id"], "src"), f"external_id:wave-{run}-{n}",
                    datetime.now(UTC), {})
        )  # fmt: skip
    return webhooks


def _scrape(port: int) -> str:
    return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text


def _buckets(metrics: str, name: str, labels: dict[str, str]) -> list[tuple[float, float]]:
    for family in text_string_to_metric_families(metrics):
        if family.name == name:
            return sorted(
                (float(s.labels["le"]), s.value)
                for s in family.samples
                if s.name == f"{name}_bucket"
                and all(s.labels.get(k) == v for k, v in labels.items())
            )
    return []


def _p99_ms(metrics: str, name: str, labels: dict[str, str]) -> float:
    """The 99th percentile in ms, interpolated within its bucket as Prometheus does."""
    buckets = _buckets(metrics, name, labels)
    if not buckets or not buckets[-1][1]:
        return 0.0
    rank, lower, below = 0.99 * buckets[-1][1], 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if upper == float("inf"):
                return lower * 1000
            share = (rank - below) / (count - below) if count > below else 1.0
            return round((lower + (upper - lower) * share) * 1000, 2)
        lower, below = upper, count
    return lower * 1000


def _count(metrics: str, name: str, labels: dict[str, str]) -> int:
    buckets = _buckets(metrics, name, labels)
    return int(buckets[-1][1]) if buckets else 0


def _sum(metrics: str, name: str) -> int:
    for family in text_string_to_metric_families(metrics):
        if family.name == name:
            return int(sum(s.value for s in family.samples if s.name.endswith("_total")))
    return 0


if __name__ == "__main__":
    print(json.dumps(run(seconds=float(sys.argv[1]) if len(sys.argv) > 1 else 20), indent=2))
