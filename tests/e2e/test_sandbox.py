"""The sandbox of the README, without Docker: `voucher-relay voucherify-emulator` and a manual
run through `serve` that publishes codes from its seeded campaign and reaches a Braze emulator."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from sqlalchemy.engine import URL

from app.braze.emulator import create_emulator, emulator_state
from app.voucherify.emulator_sandbox import CAMPAIGN_NAME, SEGMENT_ID
from tests.e2e.processes import REPO, free_port, run_cli, running_service, service_env, wait_ready
from tests.e2e.servers import serve_app_in_thread
from tests.factories import distribution_body
from tests.postgres import scratch_database

pytestmark = pytest.mark.e2e
APP_ID, APP_TOKEN = "sandbox-app", "sandbox-app-token"
KEYS = {"X-App-Id": APP_ID, "X-App-Token": APP_TOKEN}
BRAZE_KEY, OPS_TOKEN = "sandbox-braze-key", "sandbox-ops-token"


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
