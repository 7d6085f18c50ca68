"""Door: what unauthenticated traffic costs the API (app/api/request_body.py, issue 17).

`voucher-relay serve` started as a user starts it. Then, for `seconds` each:
- 300 connections each sending a 1 MiB webhook body with a wrong signature, slowly (64 KiB at
  a time, the whole body over about 6 s, within REQUEST_BODY_TIMEOUT_SECONDS); a connection
  refused starts again at once, so that the pressure stays. Meanwhile a valid signed webhook
  every half second: its answer time, and that it is stored.
- 100 connections each sending a 4 MiB body to /api/v1/distributions without a token.
The API's resident memory is sampled every 20 ms; reported is its largest rise over the level
before each attack. The webhook attack runs twice in the same run: with the default
UNAUTHENTICATED_BODY_BUDGET_BYTES, and with a budget nothing reaches (what the API held before
the budget existed).

Also, in this process: the signature check's cost on a bad signature, in ms per MiB of body,
for bodies of several shapes (the worst case for each implementation included), with the C-level
fallback of today and the byte-by-byte one it replaced.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from app.webhooks import signature
from bench.harness import free_port, plain_url, private_postgres, server_process
from bench.relay import scalar
from tests.factories import remove_whitespace_byte_by_byte, sample

SECRET = "bench-webhook-secret"
TOKEN = "bench-ops-token"
MIB = 1024 * 1024
CHUNK = 64 * 1024
UNREACHABLE_BUDGET = 1 << 40


def run(*, seconds: float = 10, webhooks: int = 300, api: int = 100) -> dict[str, Any]:
    results: dict[str, Any] = {"seconds": seconds, "webhook_connections": webhooks,
                               "api_connections": api}  # fmt: skip
    results["signature_ms_per_mib"] = signature_costs()
    with private_postgres() as url:
        database = plain_url(url)
        with _serve(database, budget=None) as (port, pid):
            results["webhook_flood"] = _webhook_flood(port, pid, database, webhooks, seconds)
            results["api_flood"] = _flood_once(
                port, pid, "/api/v1/distributions", 4 * MIB, api, seconds, headers=b""
            )
        with _serve(database, budget=UNREACHABLE_BUDGET) as (port, pid):
            results["webhook_flood_without_budget"] = _webhook_flood(
                port, pid, database, webhooks, seconds
            )
    flood, valid = results["webhook_flood"], results["webhook_flood"]["valid"]
    results["rss_growth_mb"] = flood["rss_growth_mb"]
    results["valid_webhook_max_ms"] = valid["max_ms"]
    results["valid_webhooks_stored"] = valid["stored"] == valid["sent"]
    return results


@contextmanager
def _serve(database: str, *, budget: int | None) -> Iterator[tuple[int, int]]:
    port = free_port()
    env = {
        "DATABASE_URL": database, "VOUCHERIFY_WEBHOOK_SECRET": SECRET,
        "OPS_API_TOKENS": f"bench:write:{TOKEN}", "PORT": str(port),
        "BRAZE_REST_URL": "http://127.0.0.1:9", "BRAZE_API_KEY": "bench-braze-key",
    }  # fmt: skip
    if budget is not None:
        env["UNAUTHENTICATED_BODY_BUDGET_BYTES"] = str(budget)
    with server_process([sys.executable, "-m", "app", "serve"], port=port, env=env) as pid:
        yield port, pid


def _webhook_flood(
    port: int, pid: int, database: str, connections: int, seconds: float
) -> dict[str, Any]:
    headers = b"x-voucherify-signature: " + b"0" * 64 + b"\r\n"
    valid: dict[str, Any] = {}

    def send_valid() -> None:
        valid.update(_valid_webhooks(port, database, start=seconds / 4, every=0.5,
                                     until=seconds * 0.9))  # fmt: skip

    flood = _flood_once(
        port, pid, "/webhooks/voucherify", MIB, connections, seconds, headers=headers,
        meanwhile=send_valid,
    )  # fmt: skip
    return {**flood, "valid": valid}


def _flood_once(
    port: int, pid: int, path: str, size: int, connections: int, seconds: float, *,
    headers: bytes, meanwhile: Callable[[], None] | None = None,
) -> dict[str, Any]:  # fmt: skip
    time.sleep(1)  # the API idle: the level the rise is measured from
    before = _rss_mb(pid)
    with _sampling(pid) as peak:
        side = threading.Thread(target=meanwhile) if meanwhile else None
        if side:
            side.start()
        answers = asyncio.run(_flood(port, path, size, connections, seconds, headers))
        if side:
            side.join()
    return {
        "path": path, "body_mib": size / MIB, "connections": connections,
        "rss_before_mb": round(before, 1), "rss_peak_mb": round(peak[0], 1),
        "rss_growth_mb": round(peak[0] - before, 1), "answers": answers,
    }  # fmt: skip


async def _flood(
    port: int, path: str, size: int, connections: int, seconds: float, headers: bytes
) -> dict[str, int]:
    tally: Counter[str] = Counter()
    stop = asyncio.get_running_loop().time() + seconds
    # 16 chunks of a 1 MiB body over about 6 s: slow, yet within the 10 s body timeout.
    pause = 6 / (size / CHUNK) if size <= MIB else 0.2
    await asyncio.gather(
        *(_slow_sender(port, path, size, headers, stop, pause, tally) for _ in range(connections))
    )
    return dict(sorted(tally.items()))


async def _slow_sender(
    port: int, path: str, size: int, headers: bytes, stop: float, pause: float,
    tally: Counter[str],
) -> None:  # fmt: skip
    loop = asyncio.get_running_loop()
    chunk = b" " * CHUNK
    while loop.time() < stop:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            tally["connect_error"] += 1
            await asyncio.sleep(0.1)
            continue
        head = (
            f"POST {path} HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
            f"content-length: {size}\r\n"
        ).encode()
        writer.write(head + headers + b"\r\n")
        answer = asyncio.ensure_future(reader.readline())
        sent = 0
        try:
            while sent < size and not answer.done() and loop.time() < stop:
                writer.write(chunk[: min(CHUNK, size - sent)])
                sent += CHUNK
                await asyncio.wait({answer}, timeout=pause)
            remaining = max(0.0, stop - loop.time())
            await asyncio.wait({answer}, timeout=remaining)
            if answer.done() and not answer.exception():
                status = answer.result().split(b" ")[1:2]
                tally[status[0].decode() if status else "closed"] += 1
            else:
                tally["open_at_end"] += 1
        except (OSError, IndexError):
            tally["reset"] += 1
        finally:
            answer.cancel()
            writer.close()


def _valid_webhooks(
    port: int, database: str, *, start: float, every: float, until: float
) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    times: list[float] = []
    statuses: Counter[int] = Counter()
    began = time.monotonic()
    time.sleep(start)
    n = 0
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        while time.monotonic() - began < until:
            body = sample("customer.order.paid")
            body["event"]["id"] = f"evcus_door_{run}_{n}"
            raw = json.dumps(body, separators=(",", ":")).encode()
            headers = {"content-type": "application/json",
                       "x-voucherify-signature": signature.sign(raw, SECRET.encode())}  # fmt: skip
            sent_at = time.perf_counter()
            answer = client.post("/webhooks/voucherify", content=raw, headers=headers)
            times.append((time.perf_counter() - sent_at) * 1000)
            statuses[answer.status_code] += 1
            n += 1
            time.sleep(every)
    stored = scalar(
        database,
        f"SELECT count(*) FROM webhook_events WHERE voucherify_event_id LIKE 'evcus_door_{run}_%'",
    )
    return {
        "sent": n, "stored": int(stored), "statuses": dict(statuses),
        "max_ms": round(max(times), 1) if times else None,
        "median_ms": round(sorted(times)[len(times) // 2], 1) if times else None,
    }  # fmt: skip


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextmanager
def _sampling(pid: int) -> Iterator[list[float]]:
    """The largest resident memory of `pid` seen while the block runs (list of one)."""
    peak = [_rss_mb(pid)]
    done = threading.Event()

    def sample_rss() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], _rss_mb(pid))

    sampler = threading.Thread(target=sample_rss)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join()


def _shapes() -> dict[str, bytes]:
    """1 MiB bodies: junk, and the JSON shapes that cost each implementation most."""
    pretty = json.dumps([sample("customer.order.paid")] * 1000, indent=2).encode()
    shapes = {
        "random bytes": os.urandom(MIB),
        "no whitespace": b"x" * MIB,
        "pretty-printed webhooks": pretty,
        "one space in two": b"a " * (MIB // 2),
        "tiny strings": b"[" + b", ".join([b'"a b"'] * (MIB // 7)) + b"]",
        "one long string of spaces": b'["' + b" " * MIB + b'"]',
        "escaped quotes": b'["' + b'\\" ' * (MIB // 3) + b'"]',
    }
    return {name: (body * (MIB // len(body) + 1))[:MIB] for name, body in shapes.items()}


def _verify_byte_by_byte(body: bytes, presented: str, secrets: list[bytes]) -> bool:
    """The check as it was: the raw body, then the byte-by-byte compact form."""
    import hmac

    wanted = presented.encode()
    if any(hmac.compare_digest(signature.sign(body, s).encode(), wanted) for s in secrets):
        return True
    compact = remove_whitespace_byte_by_byte(body)
    return compact != body and any(
        hmac.compare_digest(signature.sign(compact, s).encode(), wanted) for s in secrets
    )


def signature_costs(repeats: int = 3) -> dict[str, dict[str, float]]:
    """Milliseconds per MiB to refuse a wrong signature, best of `repeats`, before and now."""
    secrets, wrong = [SECRET.encode()], "0" * 64
    now = lambda body: signature.verify(body, wrong, secrets)  # noqa: E731
    before = lambda body: _verify_byte_by_byte(body, wrong, secrets)  # noqa: E731
    costs: dict[str, dict[str, float]] = {}
    for name, body in _shapes().items():
        costs[name] = {}
        for label, check in (("byte_by_byte", before), ("c_level", now)):
            best = float("inf")
            for _ in range(repeats):
                started = time.perf_counter()
                check(body)
                best = min(best, time.perf_counter() - started)
            costs[name][label] = round(best * 1000 * MIB / len(body), 1)
    costs["worst case"] = {
        label: max(c[label] for c in costs.values()) for label in ("byte_by_byte", "c_level")
    }
    return costs


if __name__ == "__main__":
    print(json.dumps(run(seconds=float(os.environ.get("DOOR_SECONDS", 10))), indent=2))
