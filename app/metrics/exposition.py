"""Turning metrics into the Prometheus text format, for the API route and the worker's port."""

from __future__ import annotations

import hmac
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, generate_latest, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from app.metrics.multiprocess import forget_dead_processes


class ProcessMetrics(Collector):
    """This process's metrics, or, with a multiprocess directory, the sum over every process
    that writes there (read afresh at each scrape, as prometheus_client requires)."""

    def __init__(self, multiprocess_dir: Path | None) -> None:
        self._dir = multiprocess_dir

    def collect(self) -> Iterable[Metric]:
        if self._dir is None:
            # The default registry: ours, plus process_* and python_* of this process.
            return REGISTRY.collect()
        forget_dead_processes(self._dir)
        return MultiProcessCollector.merge(  # type: ignore[no-any-return,no-untyped-call]
            _sized_files(self._dir), accumulate=True
        )


# A file's first 8 bytes say how much of it is used. A starting process creates its file,
# then sizes it: a scrape in between would read nothing there and fail (prometheus_client
# does not check). Files only grow, so one that has its header keeps it.
_HEADER_BYTES = 8


def _sized_files(directory: Path) -> list[str]:
    files = []
    for file in directory.glob("*.db"):
        try:
            if file.stat().st_size >= _HEADER_BYTES:
                files.append(str(file))
        except FileNotFoundError:  # a dead process's live gauges, removed meanwhile
            continue
    return files


class _Together(Collector):
    def __init__(self, collectors: Iterable[Collector]) -> None:
        self._collectors = list(collectors)

    def collect(self) -> Iterator[Metric]:
        for collector in self._collectors:
            yield from collector.collect()


def render(*collectors: Collector) -> bytes:
    """The text exposition format of every metric of `collectors`."""
    return generate_latest(_Together(collectors))


def bearer_ok(expected: str | None, authorization: str | None) -> bool:
    """True without a configured token, or when `Authorization: Bearer <token>` matches it."""
    if expected is None:
        return True
    scheme, _, presented = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        presented.strip().encode(), expected.encode()
    )


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds would flood the log."""


def serve_metrics(*, host: str, port: int, token: str | None, collector: Collector) -> WSGIServer:
    """Serve GET /metrics on a background thread (a worker has no HTTP server of its own).
    Returns the server: `shutdown()` stops it."""
    metrics_app = make_wsgi_app(collector)

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: the worker serves /metrics only\n"]
        if not bearer_ok(token, environ.get("HTTP_AUTHORIZATION")):
            start_response(
                "401 Unauthorized",
                [("Content-Type", "text/plain"), ("WWW-Authenticate", "Bearer")],
            )
            return [b"missing or wrong bearer token (METRICS_TOKEN)\n"]
        result: Iterable[bytes] = metrics_app(environ, start_response)
        return result

    server = make_server(host, port, app, ThreadingWSGIServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics-server", daemon=True).start()
    return server
