"""What a first start says, as a user sees it: the gaps of a bare configuration in one block,
no library chatter, and a database never migrated reported by /readyz until `migrate` runs."""

from __future__ import annotations

import signal
import time

import httpx
import pytest
from sqlalchemy.engine import URL

from app.db.schema import code_revisions
from tests.e2e.processes import free_port, run_cli, running_service, service_env
from tests.postgres import scratch_database

pytestmark = pytest.mark.e2e


def _readyz(port: int, deadline: float) -> httpx.Response:
    while True:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
        except httpx.HTTPError:
            assert time.monotonic() < deadline, "serve never answered"
            time.sleep(0.2)


def test_serve_on_a_database_never_migrated_is_unready_until_migrate_runs(
    server_url: URL,
) -> None:
    port = free_port()
    with scratch_database(server_url, prefix="vr_first_start") as url:
        plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
        env = service_env(DATABASE_URL=plain, PORT=str(port), OPS_API_TOKENS="",
                          VOUCHERIFY_WEBHOOK_SECRET="", BRAZE_API_KEY="",
                          VOUCHERIFY_APP_ID="", WORKER_POLL_SECONDS="0.05")  # fmt: skip
        with running_service(env) as service:
            deadline = time.monotonic() + 60
            unready = _readyz(port, deadline)
            assert unready.status_code == 503, unready.text
            assert "voucher-relay migrate" in unready.json()["checks"]["schema"]["error"]

            migrated = run_cli("migrate", env=env)
            assert migrated.returncode == 0, migrated.stderr
            head = code_revisions().head
            assert f"database schema upgraded from nothing to revision {head}" in migrated.stderr
            assert "Running upgrade" in migrated.stderr, "migrate shows alembic's steps"

            while (ready := _readyz(port, deadline)).status_code != 200:
                assert time.monotonic() < deadline, ready.text
                time.sleep(0.2)
            assert {gap["settings"][0] for gap in ready.json()["not_configured"]} == {
                "OPS_API_TOKENS", "VOUCHERIFY_WEBHOOK_SECRET", "BRAZE_API_KEY",
                "VOUCHERIFY_APP_ID",
            }  # fmt: skip
            again = run_cli("migrate", env=env)
            assert f"database schema at revision {head}: nothing to upgrade" in again.stderr
            service.send_signal(signal.SIGINT)
            output, _ = service.communicate(timeout=30)
    assert service.returncode == 0, output
    lines = output.splitlines()
    assert sum("not configured" in line for line in lines) == 1, output
    assert sum("not migrated" in line for line in lines) == 1, "one line while it waits"
    assert "uvicorn.error" not in output
    assert not any("alembic" in line or "color_message" in line for line in lines), output
    assert not any("worker cycle failed" in line for line in lines), output
