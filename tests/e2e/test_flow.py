"""Webhook in, Braze attribute out: real `voucher-relay` processes, a real Postgres, the Braze
emulator over loopback."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app import __version__
from app.sandbox.braze.emulator import create_emulator, emulator_state
from tests.e2e.processes import (
    E2E_BRAZE_KEY,
    E2E_TOKEN,
    REPO,
    free_port,
    relay_env,
    running_service,
    wait_ready,
)
from tests.e2e.servers import serve_app_in_thread
from tests.factories import distribution_body, sample, signed
from tests.metrics.scrape import Samples, parse

pytestmark = pytest.mark.e2e
BRAZE_KEY, TOKEN = E2E_BRAZE_KEY, E2E_TOKEN


def _env(database: str, braze_url: str, port: int) -> dict[str, str]:
    return relay_env(database, braze_url, port, WORKER_POLL_SECONDS="0.1")


def _send_webhook_and_wait(port: int, profiles: object) -> dict[str, object]:
    base = f"http://127.0.0.1:{port}"
    created = httpx.post(
        f"{base}/api/v1/distributions",
        json=distribution_body(),
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert created.status_code == 201, created.text
    raw, headers = signed(sample("customer.segment.entered"))
    answer = httpx.post(f"{base}/webhooks/voucherify", content=raw, headers=headers)
    assert answer.status_code == 202 and answer.json()["deliveries"] == 1, answer.text
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        profile = profiles().get("external_id:braze-usr-10042")  # type: ignore[operator]
        if profile:
            return dict(profile)
        time.sleep(0.1)
    raise AssertionError("the attribute never reached the Braze emulator")


def test_serve_delivers_a_webhook_to_braze(database: str) -> None:
    emulator = create_emulator(api_key=BRAZE_KEY)
    port = free_port()
    with (
        serve_app_in_thread(emulator) as braze_url,
        running_service(_env(database, braze_url, port), "--migrate") as service,
    ):
        wait_ready(port, service)
        profile = _send_webhook_and_wait(port, emulator_state(emulator).profiles_snapshot)
        assert profile["welcome_code"] == "WELCOME-7QX2KD"
        assert profile["welcome_code_expires_at"] == "2026-04-09T21:59:59.000Z"
        service.send_signal(signal.SIGTERM)
        assert service.wait(timeout=30) == 0


def test_api_and_worker_processes_deliver_together(database: str, tmp_path: Path) -> None:
    emulator = create_emulator(api_key=BRAZE_KEY)
    port = free_port()
    with serve_app_in_thread(emulator) as braze_url:
        # As in docker-compose.yml: the processes share a metrics directory.
        env = {**_env(database, braze_url, port), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
        with running_service(env, "--migrate", "--no-worker") as api:
            wait_ready(port, api)
            worker = subprocess.Popen(
                [sys.executable, "-m", "app", "worker"],
                cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
            try:
                profile = _send_webhook_and_wait(port, emulator_state(emulator).profiles_snapshot)
                assert profile["welcome_code"] == "WELCOME-7QX2KD"
                # The API process answers for the worker process too.
                running = _scrape_until(port, BRAZE_DELIVERED, 1)
                assert value(running, *WORKERS) == 1 and value(running, *APIS) == 1
                assert value(running, *MATCHED) == 1
            finally:
                worker.send_signal(signal.SIGTERM)
                output, _ = worker.communicate(timeout=30)
            assert worker.returncode == 0, output
            stopped = _scrape_until(port, WORKERS, 0)
            assert value(stopped, *BRAZE_DELIVERED) == 1  # a stopped worker's counts remain


Sample = tuple[str, dict[str, str]]
BRAZE_DELIVERED: Sample = (
    "voucher_relay_braze_requests_total",
    {"status_class": "2xx", "kind": "delivered"},
)
WORKERS: Sample = ("voucher_relay_processes", {"role": "worker", "version": __version__})
APIS: Sample = ("voucher_relay_processes", {"role": "api", "version": __version__})
MATCHED: Sample = (
    "voucher_relay_webhooks_received_total",
    {"event_type": "customer.segment.entered", "outcome": "matched", "status": "202"},
)


def value(samples: Samples, name: str, labels: dict[str, str]) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _scrape_until(port: int, sample: Sample, expected: float) -> Samples:
    """Scrape the API until `sample` has the expected value (the worker records it just after
    Braze answers, so a little after the emulator has the profile)."""
    deadline = time.monotonic() + 15
    while True:
        samples = parse(httpx.get(f"http://127.0.0.1:{port}/metrics").text)
        if value(samples, *sample) == expected or time.monotonic() > deadline:
            assert value(samples, *sample) == expected, sample
            return samples
        time.sleep(0.1)
