"""Several processes, one set of numbers: prometheus_client's multiprocess mode.

With PROMETHEUS_MULTIPROC_DIR set, every process writes its counters and histograms to its own
memory-mapped files in that directory, and a scrape of any process sums the files of all of
them. This must be chosen before the first metric exists: `use_directory` runs at start-up,
before `app.metrics.registry` is imported.

Files are named after a process identity. prometheus_client uses the pid, but containers that
share the directory (compose: api and worker) all run as pid 1, and two processes writing one
file corrupt each other's numbers; the identity here is host name and pid.

A process that is SIGKILLed (or OOM-killed) never removes its live gauges
(`voucher_relay_processes`), so they would count it forever. `forget_dead_processes` removes
them for processes of this host that no longer run; it runs when a process starts and at every
scrape. Counter and histogram files are never removed: the sums would go backwards.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client import values

from app.errors import ConfigError

ENVIRONMENT_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
_HOST = socket.gethostname().replace("_", "-")  # "_" separates the parts of a file name


def process_identity() -> str:
    """Distinct for processes running at the same time, also across containers."""
    return f"{_HOST}-{os.getpid()}"


def use_directory(path: Path) -> None:
    """Write this process's samples under `path` (created if missing) from now on."""
    if "app.metrics.registry" in sys.modules:
        raise RuntimeError("metrics exist already: choose the multiprocess directory first")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".probe-{process_identity()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"PROMETHEUS_MULTIPROC_DIR: cannot write to {path}: {exc}") from None
    # A process that had our host name and pid before us (a restarted container is pid 1
    # again) and was killed left its live gauges: ours would start from its values.
    process_exited(path)
    forget_dead_processes(path)
    # prometheus_client reads the directory from the environment when it creates a value.
    os.environ[ENVIRONMENT_VARIABLE] = str(path)
    values.ValueClass = values.MultiProcessValue(process_identifier=process_identity)  # type: ignore[no-untyped-call]


def process_exited(path: Path) -> None:
    """Forget this process's live gauges (`voucher_relay_processes`); its counters stay summed."""
    prometheus_multiprocess.mark_process_dead(process_identity(), str(path))  # type: ignore[no-untyped-call]


def forget_dead_processes(path: Path) -> list[str]:
    """Remove the live-gauge files of processes of this host that no longer run (as
    `mark_process_dead` would have); returns their names. Files of other hosts (containers)
    are left alone: their pids cannot be checked from here."""
    removed = []
    # gauge_<mode>_<host>-<pid>.db; the live modes (livesum, liveall, ...) count running
    # processes only, as prometheus_client defines them.
    for file in path.glob("gauge_live*.db"):
        host, _, pid = file.stem.split("_", 2)[-1].rpartition("-")
        if host != _HOST or not pid.isdigit():
            continue
        if int(pid) == os.getpid() or _running(int(pid)):
            continue
        file.unlink(missing_ok=True)
        removed.append(file.name)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True
