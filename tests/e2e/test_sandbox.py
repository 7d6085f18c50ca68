"""The sandbox, without Docker: `voucher-relay voucherify-emulator` and a manual
run through `serve` that publishes codes from its seeded campaign and reaches a Braze emulator."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import URL

from app.sandbox.braze.emulator import create_emulator, emulator_state
from app.sandbox.voucherify.seed import CAMPAIGN_NAME, SEGMENT_ID
from tests.e2e.processes import (
    REPO,
    free_port,
    run_cli,
    running_service,
    service_env,
    wait_no_postgres,
    wait_ready,
)
from tests.e2e.servers import serve_app_in_thread
from tests.factories import distribution_body
from tests.postgres import scratch_database

pytestmark = pytest.mark.e2e
APP_ID, APP_TOKEN = "sandbox-app", "sandbox-app-token"
KEYS = {"X-App-Id": APP_ID, "X-App-Token": APP_TOKEN}
BRAZE_KEY, OPS_TOKEN = "sandbox-braze-key", "sandbox-ops-token"
STOP_LINE = "Ctrl-C stops the relay, its Postgres and both emulators."


@contextmanager
def voucherify_emulator(*args: str) -> Iterator[str]:
    """`voucher-relay voucherify-emulator` on a free loopback port; stopped with SIGTERM."""
    port = free_port()
    env = service_env(VOUCHERIFY_APP_ID=APP_ID, VOUCHERIFY_APP_TOKEN=APP_TOKEN)
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "voucherify-emulator", "--host", "127.0.0.1",
         "--port", str(port), *args],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, process.communicate()[0]
            try:
                httpx.get(f"{url}/_emulator/faults", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the emulator never answered"
                time.sleep(0.1)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output


def test_voucherify_emulator_command_serves_the_sandbox_data() -> None:
    with voucherify_emulator() as url:
        assert httpx.get(f"{url}/v1/customers").status_code == 401, "keys are required"
        members = httpx.get(
            f"{url}/v1/customers", params={"segment_id": SEGMENT_ID, "limit": 100}, headers=KEYS
        )
        assert members.status_code == 200, members.text
        assert {c["source_id"] for c in members.json()["customers"]} == {
            "braze-usr-10042", "braze-usr-10043", "braze-usr-10044",
        }  # fmt: skip
        published = httpx.post(
            f"{url}/v1/publications",
            json={"campaign": {"name": CAMPAIGN_NAME}, "customer": {"source_id": "braze-usr-1"}},
            headers=KEYS,
        )
        assert published.status_code == 200, published.text
        assert published.json()["voucher"]["code"] == "WELCOME-000001"


def test_voucherify_emulator_can_start_empty() -> None:
    with voucherify_emulator("--empty") as url:
        listed = httpx.get(f"{url}/v1/customers", headers=KEYS)
        assert listed.status_code == 200 and listed.json()["total"] == 0


def test_voucherify_emulator_needs_the_keys() -> None:
    result = run_cli("voucherify-emulator", env=service_env(VOUCHERIFY_APP_ID=""))
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "VOUCHERIFY_APP_ID" in lines[0], result.stderr


def test_a_run_to_the_sandbox_segment_reaches_the_braze_emulator(server_url: URL) -> None:
    braze = create_emulator(api_key=BRAZE_KEY)
    port = free_port()
    with (
        scratch_database(server_url, prefix="vr_sandbox") as database,
        voucherify_emulator() as voucherify_url,
        serve_app_in_thread(braze) as braze_url,
    ):
        env = service_env(
            DATABASE_URL=database.set(drivername="postgresql").render_as_string(
                hide_password=False
            ),
            BRAZE_REST_URL=braze_url, BRAZE_API_KEY=BRAZE_KEY, VOUCHERIFY_API_URL=voucherify_url,
            VOUCHERIFY_APP_ID=APP_ID, VOUCHERIFY_APP_TOKEN=APP_TOKEN,
            OPS_API_TOKENS=f"me:write:{OPS_TOKEN}", PORT=str(port), WORKER_POLL_SECONDS="0.1",
        )  # fmt: skip
        with running_service(env, "--migrate") as service:
            wait_ready(port, service)
            api = httpx.Client(
                base_url=f"http://127.0.0.1:{port}/api/v1",
                headers={"Authorization": f"Bearer {OPS_TOKEN}"},
            )
            created = api.post(
                "/distributions",
                json=distribution_body(code_source={"type": "publish", "campaign": CAMPAIGN_NAME}),
            )
            assert created.status_code == 201, created.text
            run = api.post(
                f"/distributions/{created.json()['id']}/runs",
                json={"audience": {"segment_id": SEGMENT_ID}, "delay_seconds": 0, "send_now": True},
            )
            assert run.status_code == 202, run.text
            deadline = time.monotonic() + 30
            while (status := api.get(f"/runs/{run.json()['id']}").json())["status"] != "done":
                assert time.monotonic() < deadline, status
                time.sleep(0.2)
            profiles = emulator_state(braze).profiles_snapshot()
            service.send_signal(signal.SIGTERM)
            assert service.wait(timeout=30) == 0
    codes = {key: p["welcome_code"] for key, p in profiles.items() if "welcome_code" in p}
    # The two opted-in members got one code each from the campaign (in publication order).
    assert set(codes) == {"external_id:braze-usr-10042", "external_id:braze-usr-10043"}, profiles
    assert sorted(codes.values()) == ["WELCOME-000001", "WELCOME-000002"]
    assert status["progress"]["skipped"]["reasons"] == {"no_consent": 1}, status


def _sandbox(data_dir: Path, ports: tuple[int, int, int], *flags: str) -> tuple[str, str]:
    """`voucher-relay sandbox` until it says how to stop it, then Ctrl-C: (guide, the rest)."""
    port, braze_port, voucherify_port = ports
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "sandbox", "--port", str(port),
         "--braze-port", str(braze_port), "--voucherify-port", str(voucherify_port),
         "--data-dir", str(data_dir), *flags],
        cwd=REPO, env=service_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        guide = ""
        # The sandbox bounds each of its own waits, so this loop ends.
        while not guide.rstrip().endswith(STOP_LINE):
            line = process.stdout.readline()
            assert line, f"the sandbox stopped early ({process.wait()}):\n{guide}"
            guide += line
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, guide + rest
    return guide, rest


def _steps(guide: str) -> list[str]:
    """The walk-through's lines, without what differs from run to run (ids, pids)."""
    steps = []
    for line in guide.splitlines():
        if line.startswith(("1.", "2.", "3.", "   ")):
            line = re.sub(r"evcus_sandbox_\w+", "<event>", line)
            # Which of the two opted-in members gets the campaign's first code is a race.
            steps.append(re.sub(r"WELCOME-00000[12]$", "WELCOME-00000<n>", line))
    return steps


def _stopped_everything(guide: str, data_dir: Path, ports: tuple[int, ...]) -> None:
    for pid in map(int, re.findall(r" pid (\d+) ", guide)):
        assert not Path(f"/proc/{pid}").exists(), f"child {pid} still runs"
    assert wait_no_postgres(data_dir / "postgres") == [], "the sandbox left its Postgres running"
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # fails if a child still listens


def test_the_sandbox_works_twice_in_a_row_and_ctrl_c_stops_all_of_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "sandbox"
    before = set(REPO.iterdir())
    ports = (free_port(), free_port(), free_port())
    first, stopped = _sandbox(data_dir, ports)
    assert "sandbox stopped: relay, Postgres and emulators" in stopped
    _stopped_everything(first, data_dir, ports)
    assert _steps(first) == [
        "1. distributions from examples/distributions/: welcome-code created, welcome-run created",
        "2. the signed sample webhook (customer.segment.entered, <event>): 202 matched, 1 delivery",
        "   delivery 1: delivered",
        "   Braze emulator: braze-usr-10042 welcome_code = WELCOME-7QX2KD",
        f"3. manual run 1 of welcome-run to {SEGMENT_ID}: done, 2 delivered, 1 skipped"
        " (no_consent: 1)",
        "   Braze emulator: braze-usr-10042 welcome_code = WELCOME-00000<n>",
        "   Braze emulator: braze-usr-10043 welcome_code = WELCOME-00000<n>",
    ]

    second, _ = _sandbox(data_dir, ports)
    _stopped_everything(second, data_dir, ports)
    assert _steps(second) == _steps(first), "a second sandbox starts afresh and does the same"

    kept, _ = _sandbox(data_dir, ports, "--keep")
    _stopped_everything(kept, data_dir, ports)
    steps = _steps(kept)
    assert steps[0].endswith("welcome-code unchanged, welcome-run unchanged")
    assert steps[1].endswith(": 202 matched, 1 delivery"), "a new webhook id, not a duplicate"
    assert re.search(r"^3\. manual run 2 of welcome-run .*: done", steps[4]), steps
    assert set(REPO.iterdir()) == before, "the sandbox wrote outside its data folder"
