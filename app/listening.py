"""The HTTP commands' listening sockets, opened before anything else starts, and served."""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Collection

import uvicorn
from starlette.types import ASGIApp

from app.errors import ConfigError

logger = logging.getLogger(__name__)

# uvicorn's own exit status when the application's startup fails.
STARTUP_FAILURE = 3
_BACKLOG = 2048  # uvicorn's default
# Causes that lie with the address rather than the port.
_HOST_ERRNOS = {errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT}


def open_listeners(
    host: str, port: int, *, host_setting: str, port_setting: str
) -> list[socket.socket]:
    """Bound, listening sockets for every address `host` resolves to (as uvicorn would open
    them). Listening at once keeps the port: no other process can take it before we serve.
    A failure is one ConfigError naming the setting, the address and the cause."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if not 0 <= port <= 65535:
        raise ConfigError(f"{port_setting}: cannot listen on {where}: not a port (0 to 65535)")
    try:
        addresses = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except (socket.gaierror, UnicodeError) as exc:
        raise ConfigError(f"{host_setting}: cannot listen on {where}: {_cause(exc)}") from None
    listeners: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(addresses):
            sock = socket.socket(family, kind, proto)
            listeners.append(sock)
            # Lets a restart bind while the last run's connections sit in TIME_WAIT; Linux still
            # refuses a second listener on the port.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(_BACKLOG)
    except OSError as exc:
        for sock in listeners:
            sock.close()
        setting = host_setting if exc.errno in _HOST_ERRNOS else port_setting
        raise ConfigError(f"{setting}: cannot listen on {where}: {_cause(exc)}") from None
    return listeners


class SkipAccessLines(logging.Filter):
    """Drops uvicorn's access line for successful requests to `paths`: a path whose handler
    logs a line of its own for each request (the webhook intake: event id, type, outcome,
    deliveries) needs no second one. Two lines per webhook took a seventh of the API's CPU
    during a burst. Failures keep their access line."""

    def __init__(self, paths: Collection[str]) -> None:
        super().__init__()
        self.paths = frozenset(paths)

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        # uvicorn's arguments: client, method, path (with its query), HTTP version, status.
        if isinstance(args, tuple) and len(args) == 5 and args[2] in self.paths:
            return not (isinstance(args[4], int) and args[4] < 400)
        return True


def serve_http(
    app: ASGIApp,
    listeners: list[socket.socket],
    *,
    host: str,
    port: int,
    log_level: str,
    own_access_lines: Collection[str] = (),
) -> None:
    """Serve `app` with uvicorn on sockets from `open_listeners`, closing them at the end.
    Exits with uvicorn's status 3 when the application's startup fails. `own_access_lines`:
    paths that log each request themselves (uvicorn's access line is dropped when they
    succeed)."""
    access = logging.getLogger("uvicorn.access")
    skip = SkipAccessLines(own_access_lines)
    access.addFilter(skip)
    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level, log_config=None,
        # uvicorn builds each access line's arguments before asking the logger: when the level
        # would drop the line anyway, do not log access at all.
        access_log=access.isEnabledFor(logging.INFO),
    )  # fmt: skip
    server = uvicorn.Server(config)
    for sock in listeners:
        address, bound_port = sock.getsockname()[:2]
        shown = f"[{address}]" if ":" in address else address
        logger.info("listening on http://%s:%d", shown, bound_port)
    try:
        server.run(sockets=listeners)
    finally:
        access.removeFilter(skip)
        for sock in listeners:
            sock.close()
    if not server.started:
        raise SystemExit(STARTUP_FAILURE)


def _cause(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text[:1].lower() + text[1:]
