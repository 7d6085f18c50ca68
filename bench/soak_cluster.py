"""The processes of the soak: one embedded Postgres, the Braze emulator, API and worker
processes, each in its own process group with its log in the soak's folder; every one of them
stopped on the way out, whatever happened."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import IO

import httpx

from app.db import migrate
from app.db.embedded import EmbeddedPostgres
from bench.harness import REPO, free_port, plain_url, uvicorn_command


class Interrupted(Exception):
    """SIGTERM or SIGINT, raised in the main thread so that every process gets stopped."""


def raise_on_signals() -> None:
    """SIGTERM and SIGINT raise Interrupted; explicit for both, since a run started in the
    background ignores SIGINT otherwise."""

    def _raise(signum: int, frame: FrameType | None) -> None:
        raise Interrupted

    signal.signal(signal.SIGTERM, _raise)
    signal.signal(signal.SIGINT, _raise)


class Cluster:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.postgres = EmbeddedPostgres(folder / "db")
        self.database = ""
        self.api_ports: dict[str, int] = {}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[IO[bytes]] = []

    def start_postgres(self) -> str:
        url = self.postgres.start()
        migrate.upgrade(url)
        self.database = plain_url(url)
        return self.database

    def restart_postgres(self, *, down_seconds: float, while_down: list[object]) -> None:
        """Stop Postgres (fast shutdown: connections are cut), keep it down, start it again.
        `while_down` gets what `probe` returns while it is down."""
        self.postgres.stop()
        time.sleep(down_seconds / 2)
        while_down.append(self.probe())
        time.sleep(down_seconds / 2)
        self.postgres.start()

    def probe(self) -> dict[str, int]:
        """/readyz of every API process, by name."""
        answers = {}
        for name, port in self.api_ports.items():
            try:
                answers[name] = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code
            except httpx.HTTPError:
                answers[name] = 0
        return answers

    def start_emulator(self, env: dict[str, str]) -> str:
        port = free_port()
        self.start("emulator", [*uvicorn_command("bench.braze_emulator:app", port), "--factory"],
                   env)  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        self._wait_http(f"{url}/_emulator/faults", "emulator")
        return url

    def start_api(self, name: str, env: dict[str, str]) -> int:
        port = free_port()
        self.api_ports[name] = port
        self.start(name, [sys.executable, "-m", "app", "serve", "--no-worker", "--port",
                          str(port)], env)  # fmt: skip
        self._wait_http(f"http://127.0.0.1:{port}/readyz", name)
        return port

    def start_worker(self, name: str, env: dict[str, str]) -> None:
        self.start(name, [sys.executable, "-m", "app", "worker"], env)

    def start(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log = (self.folder / f"{name}.log").open("ab")
        self._logs.append(log)
        self.processes[name] = subprocess.Popen(
            args, cwd=REPO, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killed as a whole
        )  # fmt: skip

    def kill(self, name: str) -> None:
        """SIGKILL: no shutdown, no flush, leases left behind."""
        process = self.processes.pop(name)
        _signal_group(process, signal.SIGKILL)
        process.wait()

    def stop_all(self) -> None:
        for process in self.processes.values():
            _signal_group(process, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()
        self.processes.clear()
        self.postgres.stop()
        for log in self._logs:
            log.close()

    def _wait_http(self, url: str, name: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.processes[name].poll() is not None:
                raise RuntimeError(f"{name} exited; see {self.folder / name}.log")
            try:
                httpx.get(url, timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"{name} did not answer within {timeout} s")


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)
