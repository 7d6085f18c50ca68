"""Post a stream of webhooks once each, like Voucherify: keep-alive connections spread over
one or more API processes, each webhook retried on any non-2xx answer or broken connection
(with a short backoff here, where Voucherify waits up to hours) until it is acknowledged."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.events import Webhook
from bench.loadgen import exchange

PATH = "/webhooks/voucherify"
# Voucherify gives up on an answer after 10 s.
ANSWER_TIMEOUT = 10.0


@dataclass
class Posted:
    final: list[int]  # per webhook: its last status (2xx: acknowledged), 0 if never answered
    statuses: Counter[int] = field(default_factory=Counter)  # every answer, retries included
    retries: int = 0
    connection_errors: int = 0
    started_at: float = 0.0  # time.time() of the first post
    seconds: float = 0.0

    @property
    def acknowledged(self) -> int:
        return sum(1 for status in self.final if 200 <= status < 300)


async def post_all(
    webhooks: Sequence[Webhook], *, ports: Sequence[int], connections: int,
    rate: float | None = None, max_tries: int = 12, host: str = "127.0.0.1",
) -> Posted:  # fmt: skip
    """Post every webhook in order (`rate` per second at most, if given) over `connections`
    connections spread over `ports`."""
    posted = Posted(final=[0] * len(webhooks))
    next_index = iter(range(len(webhooks)))
    started = time.monotonic()
    posted.started_at = time.time()

    async def connection(port: int) -> None:
        streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        for index in next_index:
            if rate:
                await asyncio.sleep(max(0.0, started + index / rate - time.monotonic()))
            webhook = webhooks[index]
            for attempt in range(max_tries):
                if attempt:
                    posted.retries += 1
                    await asyncio.sleep(min(5.0, 0.5 * 2 ** (attempt - 1)))
                try:
                    if streams is None:
                        streams = await asyncio.open_connection(host, port)
                    status = await asyncio.wait_for(
                        exchange(*streams, host=host, path=PATH, body=webhook.raw,
                                 signature=webhook.signature),
                        ANSWER_TIMEOUT,
                    )  # fmt: skip
                except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
                    posted.connection_errors += 1
                    _closed(streams)
                    streams = None
                    continue
                posted.statuses[status] += 1
                posted.final[index] = status
                if 200 <= status < 300:
                    break
        _closed(streams)

    await asyncio.gather(*(connection(ports[n % len(ports)]) for n in range(connections)))
    posted.seconds = time.monotonic() - started
    return posted


def _closed(streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
    if streams is not None:
        streams[1].close()
