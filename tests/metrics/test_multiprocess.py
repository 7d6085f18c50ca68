"""Several processes, one scrape: each process writes its own files, a scrape sums them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app import __version__
from app.metrics.exposition import ProcessMetrics, render
from app.metrics.multiprocess import process_identity
from tests.e2e.processes import REPO
from tests.metrics.scrape import parse, value

# What one API or worker process does: choose the directory, then count.
_PROCESS = """
import sys
from pathlib import Path
from app.metrics import multiprocess
directory, webhooks, role, exits = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
multiprocess.use_directory(directory)
from app.metrics import registry
for _ in range(webhooks):
    registry.count_webhook("customer.order.paid", "matched", 202)
registry.observe_braze_request(status_code=201, error=None, kind="delivered", seconds=0.2)
registry.DATA_POINTS_SAVED.inc(5)
registry.process_running(role).inc()
if exits == "exits":
    multiprocess.process_exited(directory)
"""


def _run(directory: Path, webhooks: int, role: str, exits: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _PROCESS, str(directory), str(webhooks), role, exits],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def test_one_scrape_sums_the_counters_of_every_process(tmp_path: Path) -> None:
    processes = [
        _run(tmp_path, 3, "api", "stays"),
        _run(tmp_path, 4, "worker", "stays"),
        _run(tmp_path, 0, "worker", "exits"),
    ]
    for process in processes:
        output, _ = process.communicate(timeout=60)
        assert process.returncode == 0, output

    samples = parse(render(ProcessMetrics(tmp_path)).decode())

    webhooks = {"event_type": "customer.order.paid", "outcome": "matched", "status": "202"}
    assert value(samples, "voucher_relay_webhooks_received_total", **webhooks) == 7
    assert value(samples, "voucher_relay_data_points_saved_total") == 15
    assert value(samples, "voucher_relay_braze_request_duration_seconds_count") == 3
    assert value(samples, "voucher_relay_braze_request_duration_seconds_sum") == pytest.approx(0.6)
    assert value(samples, "voucher_relay_braze_request_duration_seconds_bucket", le="0.25") == 3
    assert (
        value(samples, "voucher_relay_braze_requests_total", status_class="2xx", kind="delivered")
        == 3
    )
    # The process that exited is no longer running; its counts above still add up.
    assert value(samples, "voucher_relay_processes", role="api", version=__version__) == 1
    assert value(samples, "voucher_relay_processes", role="worker", version=__version__) == 1


def test_file_names_stay_apart_across_containers_that_share_a_pid() -> None:
    identity = process_identity()
    # prometheus_client splits file names on "_": the identity must not contain one.
    assert "_" not in identity
    host, pid = identity.rsplit("-", 1)
    assert host and pid.isdigit()
