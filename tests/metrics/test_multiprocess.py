"""Several processes, one scrape: each process writes its own files, a scrape sums them, and a
process killed before it could say so stops counting as running (its counts stay)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from app import __version__
from app.metrics.exposition import ProcessMetrics, render
from app.metrics.multiprocess import process_identity
from tests.e2e.processes import REPO
from tests.metrics.scrape import Samples, parse, value

# What one API or worker process does: choose the directory, count, then exit (cleanly, or
# without a word as a killed process would) or keep running until its stdin closes.
# `host=NAME` and `pid=N` stand for a container: its own host name, and the same pid again
# after a restart (every container runs its process as pid 1).
_PROCESS = """
import os, socket, sys
from pathlib import Path
directory, webhooks, role, ending = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
for option in sys.argv[5:]:
    name, _, given = option.partition("=")
    if name == "host":
        socket.gethostname = lambda: given
    elif name == "pid":
        os.getpid = lambda: int(given)
from app.metrics import multiprocess
multiprocess.use_directory(directory)
from app.metrics import registry
for _ in range(webhooks):
    registry.count_webhook("customer.order.paid", "matched", 202)
registry.observe_braze_request(status_code=201, error=None, kind="delivered", seconds=0.2)
registry.DATA_POINTS_SAVED.inc(5)
registry.process_running(role).inc()
if ending == "exits":
    multiprocess.process_exited(directory)
elif ending == "stays":
    print("running", flush=True)
    sys.stdin.read()
"""

WEBHOOKS = {"event_type": "customer.order.paid", "outcome": "matched", "status": "202"}
COUNTED = "voucher_relay_webhooks_received_total"


def _start(
    directory: Path, webhooks: int, role: str, ending: str, *options: str
) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", _PROCESS, str(directory), str(webhooks), role, ending, *options],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    if ending == "stays":
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line == "running\n", line + process.communicate(timeout=30)[0]
    else:
        output, _ = process.communicate(timeout=60)
        assert process.returncode == 0, output
    return process


@pytest.fixture
def running() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes that stay until the test ends (then their stdin closes and they exit)."""
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.communicate(timeout=30)


def _processes(samples: Samples, role: str) -> float:
    return value(samples, "voucher_relay_processes", role=role, version=__version__)


def _files_only(directory: Path) -> Samples:
    """What the files say, read without forgetting anyone (a bare prometheus_client read)."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    return parse(generate_latest(registry).decode())


def test_one_scrape_sums_the_counters_of_every_process(
    tmp_path: Path, running: list[subprocess.Popen[str]]
) -> None:
    running.append(_start(tmp_path, 3, "api", "stays"))
    running.append(_start(tmp_path, 4, "worker", "stays"))
    _start(tmp_path, 0, "worker", "exits")

    samples = parse(render(ProcessMetrics(tmp_path)).decode())

    assert value(samples, COUNTED, **WEBHOOKS) == 7
    assert value(samples, "voucher_relay_data_points_saved_total") == 15
    assert value(samples, "voucher_relay_braze_request_duration_seconds_count") == 3
    assert value(samples, "voucher_relay_braze_request_duration_seconds_sum") == pytest.approx(0.6)
    assert value(samples, "voucher_relay_braze_request_duration_seconds_bucket", le="0.25") == 3
    assert (
        value(samples, "voucher_relay_braze_requests_total", status_class="2xx", kind="delivered")
        == 3
    )
    # The process that exited is no longer running; its counts above still add up.
    assert _processes(samples, "api") == 1
    assert _processes(samples, "worker") == 1


def test_a_killed_process_is_forgotten_when_the_next_one_starts_and_its_counts_stay(
    tmp_path: Path, running: list[subprocess.Popen[str]]
) -> None:
    killed = _start(tmp_path, 4, "worker", "stays")
    running.append(killed)
    assert _processes(_files_only(tmp_path), "worker") == 1
    killed.kill()  # SIGKILL: no chance to remove its files
    killed.communicate(timeout=30)
    assert _processes(_files_only(tmp_path), "worker") == 1  # nobody has noticed yet

    running.append(_start(tmp_path, 1, "api", "stays"))

    samples = _files_only(tmp_path)
    assert _processes(samples, "worker") == 0
    assert _processes(samples, "api") == 1
    assert value(samples, COUNTED, **WEBHOOKS) == 5  # the killed worker's 4 still count
    assert value(samples, "voucher_relay_data_points_saved_total") == 10


def test_a_scrape_forgets_killed_processes_of_this_host_only(
    tmp_path: Path, running: list[subprocess.Popen[str]]
) -> None:
    killed = _start(tmp_path, 4, "worker", "stays")
    running.append(killed)
    # A worker in another container writes here too; its pid means nothing on this host.
    live = next(tmp_path.glob(f"gauge_livesum_*-{killed.pid}.db"))
    shutil.copy(live, tmp_path / f"gauge_livesum_elsewhere-{killed.pid}.db")
    counters = sorted(p.name for p in tmp_path.glob("counter_*.db"))
    killed.kill()
    killed.communicate(timeout=30)

    samples = parse(render(ProcessMetrics(tmp_path)).decode())

    assert _processes(samples, "worker") == 1  # the other host's, not the killed one
    assert not live.exists()
    assert value(samples, COUNTED, **WEBHOOKS) == 4
    assert sorted(p.name for p in tmp_path.glob("counter_*.db")) == counters


def test_a_restarted_container_does_not_count_its_killed_predecessor(
    tmp_path: Path, running: list[subprocess.Popen[str]]
) -> None:
    # A worker container, pid 1, is OOM-killed and restarted: same host name, pid 1 again.
    container = ("host=worker-1", "pid=1")
    killed = _start(tmp_path, 4, "worker", "stays", *container)
    killed.kill()
    killed.communicate(timeout=30)
    running.append(_start(tmp_path, 2, "worker", "stays", *container))

    samples = parse(render(ProcessMetrics(tmp_path)).decode())

    assert _processes(samples, "worker") == 1
    assert value(samples, COUNTED, **WEBHOOKS) == 6  # counting goes on from the first's 4


def test_file_names_stay_apart_across_containers_that_share_a_pid() -> None:
    identity = process_identity()
    # prometheus_client splits file names on "_": the identity must not contain one.
    assert "_" not in identity
    host, pid = identity.rsplit("-", 1)
    assert host and pid.isdigit()


def test_a_scrape_while_a_process_creates_its_files_skips_them(
    tmp_path: Path, running: list[subprocess.Popen[str]]
) -> None:
    running.append(_start(tmp_path, 3, "api", "stays"))
    # A starting process (serve's new worker child) opens its files before it sizes them: a
    # scrape in between finds them empty.
    (tmp_path / "counter_starting-4242.db").touch()
    (tmp_path / "histogram_starting-4242.db").write_bytes(b"\0\0")

    samples = parse(render(ProcessMetrics(tmp_path)).decode())

    assert value(samples, COUNTED, **WEBHOOKS) == 3
