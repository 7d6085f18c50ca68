"""The sandbox's child processes: started in a process group of their own (a Ctrl-C in the
terminal reaches the sandbox alone, which then stops each child by its pid, in order), with
their output in a log file, and killed by the kernel should the sandbox itself be killed."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from app.db.embedded import pid_alive

_PR_SET_PDEATHSIG = 1
STOP_TIMEOUT_SECONDS = 30.0


class ChildFailed(Exception):
    """A child stopped, or never answered, while the sandbox started."""


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def last_lines(self, count: int = 5) -> str:
        lines = self.log.read_text(errors="replace").strip().splitlines()
        return "\n".join(f"    {line}" for line in lines[-count:])


def _die_with_parent() -> None:
    # Linux: SIGTERM to the child when the sandbox dies (even by SIGKILL), so that nothing is
    # orphaned holding the ports; the relay then stops its Postgres as on a Ctrl-C.
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def start(name: str, args: list[str], *, env: dict[str, str], log: Path) -> Child:
    """`voucher-relay ARGS` (this interpreter's) with its output appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", *args], env=env, stdin=subprocess.DEVNULL,
            stdout=output, stderr=subprocess.STDOUT, process_group=0,
            preexec_fn=_die_with_parent,
        )  # fmt: skip
    return Child(name=name, process=process, log=log)


def wait_answering(child: Child, url: str, *, timeout: float) -> None:
    """Until `url` answers 200; ChildFailed (with its last log lines) if the child exits."""
    deadline = time.monotonic() + timeout
    while True:
        if child.process.poll() is not None:
            raise ChildFailed(
                f"the {child.name} stopped (exit {child.process.returncode}); the end of "
                f"{child.log}:\n{child.last_lines()}"
            )
        try:
            if httpx.get(url, timeout=2, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise ChildFailed(f"the {child.name} did not answer {url} within {timeout:g} s")
        time.sleep(0.2)


def stop(child: Child) -> int:
    """SIGTERM to the child's pid, SIGKILL after STOP_TIMEOUT_SECONDS; its exit status."""
    if child.process.poll() is None:
        child.process.send_signal(signal.SIGTERM)
        try:
            child.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait()
    return child.process.returncode


def stop_pid(pid: int) -> None:
    """The relay's Postgres, should the relay have died without stopping it: SIGINT (its fast
    shutdown: it disconnects clients, where SIGTERM would wait for them), then wait for it."""
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while pid_alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.1)
