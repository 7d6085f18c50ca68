"""`serve` runs its delivery worker as a child process: woken at once when deliveries are ready,
counted in serve's /metrics, started again when it dies, and gone when serve goes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app import __version__
from app.sandbox.braze.emulator import create_emulator, emulator_state
from tests.e2e.processes import (
    E2E_BRAZE_KEY,
    E2E_TOKEN,
    free_port,
    relay_env,
    running_service,
    wait_ready,
)
from tests.e2e.servers import serve_app_in_thread
from tests.factories import distribution_body, sample, signed
from tests.metrics.scrape import parse, value

pytestmark = pytest.mark.e2e
USER = "external_id:braze-usr-10042"
# Far longer than any wait below: a delivery that arrives in time was woken, not polled for.
POLL_SECONDS = "300"


@contextmanager
def serving(database: str) -> Iterator[tuple[subprocess.Popen[str], int, FastAPI]]:
    """`serve` (with its worker child) on a free port, ready, Braze an emulator."""
    emulator = create_emulator(api_key=E2E_BRAZE_KEY)
    port = free_port()
    env = relay_env(database, "", port, WORKER_POLL_SECONDS=POLL_SECONDS)
    with serve_app_in_thread(emulator) as braze_url:
        env["BRAZE_REST_URL"] = braze_url
        with running_service(env, "--migrate") as service:
            wait_ready(port, service)
            yield service, port, emulator


def _children(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(c) for c in (task / "children").read_text().split()]
    return children


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its parent has not collected it yet


def _wait(condition: object, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(0.1)


def _worker_child(serve_pid: int) -> int:
    found: list[int] = []

    def one_child() -> bool:
        found[:] = _children(serve_pid)
        return len(found) == 1

    _wait(one_child, "serve has no single worker child")
    return found[0]


def _claims(port: int) -> float:
    samples = parse(httpx.get(f"http://127.0.0.1:{port}/metrics").text)
    return value(samples, "voucher_relay_worker_statement_seconds_count", statement="braze_claim")


def _deliver(port: int, emulator: FastAPI, balance: int) -> None:
    """A webhook whose attribute the worker must send before its next poll, so only a wake
    from serve can get it there in time. The worker has looked for work and found none first:
    it is waiting for its poll."""
    _wait(lambda: _claims(port) >= 1, "the worker never looked for work")
    body = sample("customer.segment.entered")
    body["id"] = f"whs_child_{balance}"
    body["event"]["id"] = f"evcus_child_{balance}"
    body["data"]["voucher"]["code"] = f"CODE-{balance}"
    raw, headers = signed(body)
    answer = httpx.post(f"http://127.0.0.1:{port}/webhooks/voucherify", content=raw,
                        headers=headers)  # fmt: skip
    assert answer.status_code == 202 and answer.json()["deliveries"] == 1, answer.text
    profiles = emulator_state(emulator).profiles_snapshot
    _wait(lambda: profiles().get(USER, {}).get("welcome_code") == f"CODE-{balance}",
          f"CODE-{balance} never reached Braze before the worker's next poll")  # fmt: skip


def _create_distribution(port: int) -> None:
    created = httpx.post(
        f"http://127.0.0.1:{port}/api/v1/distributions", json=distribution_body(),
        headers={"Authorization": f"Bearer {E2E_TOKEN}"},
    )  # fmt: skip
    assert created.status_code == 201, created.text


def test_serve_wakes_its_worker_child_and_its_metrics_count_the_child(database: str) -> None:
    with serving(database) as (service, port, emulator):
        child = _worker_child(service.pid)
        _create_distribution(port)
        _deliver(port, emulator, 1)

        def worker_counted() -> bool:
            samples = parse(httpx.get(f"http://127.0.0.1:{port}/metrics").text)
            processes = value(samples, "voucher_relay_processes", role="worker",
                              version=__version__)  # fmt: skip
            sent = value(samples, "voucher_relay_braze_requests_total", status_class="2xx",
                         kind="delivered")  # fmt: skip
            return processes == 1 and sent == 1

        _wait(worker_counted, "serve's /metrics does not count its worker child")
        service.send_signal(signal.SIGTERM)
        assert service.wait(timeout=60) == 0
    assert not _running(child), "serve stopped but left its worker running"


def test_a_worker_child_that_dies_is_started_again_and_delivers(database: str) -> None:
    with serving(database) as (service, port, emulator):
        _create_distribution(port)
        first = _worker_child(service.pid)
        os.kill(first, signal.SIGKILL)
        _wait(lambda: _children(service.pid) not in ([], [first]), "no new worker was started")
        _deliver(port, emulator, 2)
        assert service.poll() is None, "serve exited with its worker"


def test_the_worker_child_stops_when_serve_is_killed(database: str) -> None:
    with serving(database) as (service, _, _):
        child = _worker_child(service.pid)
        service.kill()
        service.wait()
        # Orphaned, it is re-parented (to init, or to a subreaper that collects it).
        _wait(lambda: not _running(child), "the worker outlived a killed serve")
