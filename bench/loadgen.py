"""A small HTTP/1.1 load generator on raw asyncio streams: keep-alive connections posting
signed, unique webhooks for a fixed time. Cheap per request, so the server is what is measured."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class LoadResult:
    requests: int
    errors: int
    statuses: dict[int, int]
    seconds: float
    latencies_ms: list[float]

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, fraction: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def webhook_factory(template: dict[str, Any], secret: bytes) -> Callable[[int], tuple[bytes, str]]:
    """Bodies that differ only in event id, customer and send-out id, each signed."""
    marker = "@@N@@"
    run = uuid.uuid4().hex[:8]  # every run (warm-up included) posts new events
    body = json.loads(json.dumps(template))
    body["id"] = f"whs_{run}_{marker}"
    body["event"]["id"] = f"evcus_{run}_{marker}"
    if isinstance(body.get("data", {}).get("customer"), dict):
        body["data"]["customer"]["source_id"] = f"bench-user-{marker}"
    prefix_parts = json.dumps(body, separators=(",", ":")).split(marker)

    def make(number: int) -> tuple[bytes, str]:
        raw = str(number).join(prefix_parts).encode()
        return raw, hmac.new(secret, raw, hashlib.sha256).hexdigest()

    return make


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, host: str, path: str,
    body: bytes, signature: str,
) -> int:  # fmt: skip
    """Post one signed webhook on a keep-alive connection; its status (0: no status line)."""
    writer.write(
        (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"x-voucherify-signature: {signature}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
    )
    status_line = await reader.readline()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return int(status_line.split()[1]) if status_line else 0


async def _connection(
    host: str, port: int, path: str, make: Callable[[int], tuple[bytes, str]],
    counter: list[int], deadline: float, result: LoadResult,
) -> None:  # fmt: skip
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.monotonic() < deadline:
            counter[0] += 1
            body, signature = make(counter[0])
            started = time.perf_counter()
            status = await exchange(reader, writer, host=host, path=path, body=body,
                                    signature=signature)  # fmt: skip
            result.latencies_ms.append((time.perf_counter() - started) * 1000)
            result.statuses[status] = result.statuses.get(status, 0) + 1
            result.requests += 1
            if status >= 400 or status == 0:
                result.errors += 1
    finally:
        writer.close()


async def run_load(
    *, host: str, port: int, path: str, template: dict[str, Any], secret: bytes,
    connections: int, seconds: float, first_number: int = 0,
    bodies: Sequence[tuple[bytes, str]] | None = None,
) -> LoadResult:  # fmt: skip
    """Post for `seconds`: a new webhook from `template` each time, or `bodies` (signed) in a
    cycle, the same bytes again once all were sent (duplicates, as Voucherify's retries)."""
    make = (
        webhook_factory(template, secret)
        if bodies is None
        else lambda number: bodies[number % len(bodies)]
    )
    result = LoadResult(requests=0, errors=0, statuses={}, seconds=0.0, latencies_ms=[])
    counter = [first_number]
    started = time.monotonic()
    deadline = started + seconds
    workers = [
        _connection(host, port, path, make, counter, deadline, result) for _ in range(connections)
    ]
    await asyncio.gather(*workers)
    result.seconds = time.monotonic() - started
    return result
