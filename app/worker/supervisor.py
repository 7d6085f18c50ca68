"""`serve`'s delivery worker, run as a child process (`voucher-relay worker --wake-fd N`).

Why a process and not a thread: the API and the worker both want the interpreter at once during
a burst, and CPython lets one thread run Python at a time. Every time the API's loop releases
the interpreter for I/O (a socket write, a log line, a query), taking it back waits up to the
switch interval (5 ms) for the worker thread; a burst's intake then fell to 0.2 to 0.3 of a bare
endpoint. A process has an interpreter of its own, and the operating system shares the cores.

The child is told that deliveries are ready through a pipe: the API writes a byte (dropped when
the pipe is full: the child has a wake-up pending anyway); end of file on the pipe means the
parent has gone, however it went (a SIGKILL included), and the child then stops as on SIGTERM.
A child that exits while the parent serves is started again, after a pause that grows while it
keeps failing. The parent stops the child before it stops its embedded Postgres.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

from sqlalchemy.engine import URL

from app.config import Settings

logger = logging.getLogger(__name__)

# A child that ran this long before it exited was healthy: the next one starts without a pause.
HEALTHY_AFTER_SECONDS = 60.0
RESTART_PAUSES = (1.0, 2.0, 5.0, 10.0, 30.0)


class WorkerProcess:
    """Starts, supervises and stops the child. `wake()` may be called from any thread."""

    def __init__(self, settings: Settings, url: URL) -> None:
        self._settings, self._url = settings, url
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._child: subprocess.Popen[bytes] | None = None
        self._supervisor = threading.Thread(
            target=self._supervise, name="worker-supervisor", daemon=True
        )

    @property
    def pid(self) -> int | None:
        child = self._child
        return child.pid if child is not None else None

    def start(self) -> None:
        with self._lock:
            self._child = self._spawn()
        self._supervisor.start()

    def wake(self) -> None:
        """Tell the child that deliveries are ready to send (cheap, never blocks)."""
        with contextlib.suppress(BlockingIOError, BrokenPipeError):
            os.write(self._write, b"\x01")

    def stop(self) -> None:
        """SIGTERM the child and wait: it cancels database work at once and gives Braze
        requests on their way `BRAZE_TIMEOUT_SECONDS` + 5 s; past that (and a margin for its
        own exit), it is killed."""
        self._stopping.set()
        with self._lock:
            child = self._child
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=self._settings.braze_timeout_seconds + 15)
            except subprocess.TimeoutExpired:
                logger.warning("the delivery worker (pid %d) did not stop: killing it", child.pid)
                child.kill()
                child.wait()
        if self._supervisor.is_alive():
            self._supervisor.join(timeout=5)
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            # The child uses the database this process provides (the embedded one included)
            # and never starts or migrates one of its own.
            "DATABASE_URL": self._url.render_as_string(hide_password=False),
        }
        if self._settings.prometheus_multiproc_dir is not None:
            env["PROMETHEUS_MULTIPROC_DIR"] = str(self._settings.prometheus_multiproc_dir)
        child = subprocess.Popen(
            [sys.executable, "-m", "app", "worker", "--wake-fd", str(self._read)],
            env=env, pass_fds=(self._read,), stdin=subprocess.DEVNULL,
        )  # fmt: skip
        logger.info("delivery worker started (pid %d)", child.pid)
        return child

    def _supervise(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            child = self._child
            assert child is not None
            started = time.monotonic()
            code = child.wait()
            if self._stopping.is_set():
                return
            failures = 0 if time.monotonic() - started > HEALTHY_AFTER_SECONDS else failures + 1
            pause = RESTART_PAUSES[min(failures, len(RESTART_PAUSES)) - 1] if failures else 0.0
            logger.error(
                "the delivery worker (pid %d) exited with %s: starting another in %g s",
                child.pid, _exit_reason(code), pause,
            )  # fmt: skip
            if self._stopping.wait(pause):
                return
            with self._lock:
                if self._stopping.is_set():
                    return
                self._child = self._spawn()


def _exit_reason(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
        return f"signal {-code}"
    return f"code {code}"


@contextlib.contextmanager
def running_worker(settings: Settings, url: URL) -> Iterator[WorkerProcess]:
    """The child runs for the block; it is stopped (and waited for) however the block ends."""
    worker = WorkerProcess(settings, url)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()
