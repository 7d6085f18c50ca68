"""Serve an ASGI app (the Braze emulator, say) over loopback from a background thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn
from starlette.types import ASGIApp


@contextmanager
def serve_app_in_thread(
    app: ASGIApp, *, startup_timeout: float = 10.0, shutdown_timeout: int = 5
) -> Iterator[str]:
    """Run `app` with uvicorn on 127.0.0.1 and a free port; yield its base URL once it answers
    HTTP, and stop it (waiting for the thread) when the block ends.

    Raises RuntimeError when the server does not answer within `startup_timeout` seconds.
    """
    # Binding here, not by port number, leaves no gap in which another process takes the port.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="auto",
        timeout_graceful_shutdown=shutdown_timeout,
    )
    server = uvicorn.Server(config)
    # uvicorn installs no signal handlers off the main thread, so Ctrl-C still reaches pytest.
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{port}", daemon=True
    )
    thread.start()
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_answering(base_url, thread=thread, timeout=startup_timeout)
        yield base_url
    finally:
        server.should_exit = True
        thread.join(timeout=shutdown_timeout + 5)
        sock.close()
    # Reached only when the block ended normally: its own error is the one worth seeing.
    if thread.is_alive():
        raise RuntimeError(f"the server on {base_url} did not stop")


def _wait_until_answering(base_url: str, *, thread: threading.Thread, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not thread.is_alive():
            raise RuntimeError(f"the server for {base_url} stopped while starting")
        try:
            # Any HTTP answer, 404 included, means the server is up.
            httpx.get(f"{base_url}/", timeout=0.5, trust_env=False)
            return
        except httpx.TransportError:
            time.sleep(0.02)
    raise RuntimeError(f"the server on {base_url} did not answer within {timeout} s")
