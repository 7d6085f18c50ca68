"""Start `voucher-relay` as a real process, the way a user does, and clean up after it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
E2E_BRAZE_KEY = "e2e-braze-key"
E2E_TOKEN = "e2e-ops-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def service_env(**overrides: str) -> dict[str, str]:
    """The environment of the test run, minus anything that would pick a database for us."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "TEST_DATABASE_URL"}}
    env.update(overrides)
    return env


def relay_env(database: str, braze_url: str, port: int, **overrides: str) -> dict[str, str]:
    """`serve` on `port` with `database`, Braze at `braze_url` (key E2E_BRAZE_KEY), the ops
    token E2E_TOKEN and the suite's webhook secret."""
    return service_env(
        DATABASE_URL=database, BRAZE_REST_URL=braze_url, BRAZE_API_KEY=E2E_BRAZE_KEY,
        VOUCHERIFY_WEBHOOK_SECRET="test-webhook-secret", OPS_API_TOKENS=f"e2e:write:{E2E_TOKEN}",
        PORT=str(port), **overrides,
    )  # fmt: skip


def run_cli(
    *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextmanager
def running_service(env: dict[str, str], *args: str) -> Iterator[subprocess.Popen[str]]:
    """`voucher-relay serve` in the background; killed at the end if the test did not stop it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout:
            process.stdout.close()


def wait_ready(port: int, process: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise AssertionError(f"service exited with {process.returncode}:\n{output}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"service not ready on port {port} within {timeout}s")


def postgres_pids(pgdata: Path) -> list[int]:
    """Pids of postmasters serving `pgdata` (read from /proc: no extra dependency)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline and cmdline[0].endswith(b"/postgres") and str(pgdata).encode() in cmdline:
            pids.append(int(entry.name))
    return pids


def wait_no_postgres(pgdata: Path, timeout: float = 15) -> list[int]:
    deadline = time.monotonic() + timeout
    while (pids := postgres_pids(pgdata)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return pids
