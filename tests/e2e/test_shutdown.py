"""Stopping is bounded: a stop during a worker statement that would run for minutes cancels it
after the grace period, and the embedded Postgres is stopped by the process that owns it."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from app.db.schema import code_revisions
from tests.e2e.processes import (
    REPO,
    free_port,
    postgres_pids,
    running_service,
    service_env,
    wait_no_postgres,
    wait_ready,
)

pytestmark = pytest.mark.e2e

# The grace for requests on their way to Braze is BRAZE_TIMEOUT_SECONDS + 5: 25 s here. The
# stuck statement would run 10 minutes; database work is canceled at once, not after the grace.
GRACE = 25.0
SETTINGS = {
    "BRAZE_API_KEY": "test-key",
    "BRAZE_REST_URL": "http://127.0.0.1:9",
    "BRAZE_TIMEOUT_SECONDS": "20",
    "DELIVERY_LEASE_SECONDS": "60",
    "WORKER_POLL_SECONDS": "0.1",
    "WORKER_STATEMENT_TIMEOUT_SECONDS": "600",
}
STOPPED_WITHIN = 60.0


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "data"
    for pid in postgres_pids(tmp_path / "data" / "postgres"):
        subprocess.run(["kill", "-KILL", str(pid)], check=False)


class TableLock:
    """Holds `deliveries` locked from another connection, so that every worker statement on it
    waits: a stand-in for a claim stuck in a plan that takes minutes."""

    def __init__(self, socket_dir: Path) -> None:
        self.socket_dir = str(socket_dir)
        self.release = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._hold()), daemon=True)

    async def _hold(self) -> None:
        connection = await asyncpg.connect(
            host=self.socket_dir, user="postgres", database="voucher_relay"
        )
        try:
            async with connection.transaction():
                await connection.execute("LOCK TABLE deliveries IN ACCESS EXCLUSIVE MODE")
                await asyncio.to_thread(self.release.wait)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            pass  # the server stopped under us: what the test wants
        finally:
            if not connection.is_closed():
                await connection.close()

    def __enter__(self) -> TableLock:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.thread.join(timeout=30)


async def _waiting_on_the_lock(socket_dir: str) -> int:
    connection = await asyncpg.connect(host=socket_dir, user="postgres", database="voucher_relay")
    try:
        # A claim of the worker's (not a migration, not this query).
        waiting: int = await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND query LIKE '%FROM deliveries AS d%' AND query NOT LIKE '%pg_stat_activity%'"
        )
        return waiting
    finally:
        await connection.close()


async def _migrated(socket_dir: str) -> bool:
    """The schema at the code's head: a migration still running would wait on the test's lock
    and be taken for the worker (and a stop would interrupt it)."""
    try:
        connection = await asyncpg.connect(
            host=socket_dir, user="postgres", database="voucher_relay"
        )
    except (OSError, asyncpg.PostgresError):
        return False
    try:
        revision = await connection.fetchval(
            "SELECT version_num FROM alembic_version WHERE to_regclass('alembic_version')"
            " IS NOT NULL"
        )
    except asyncpg.PostgresError:
        return False
    finally:
        await connection.close()
    return bool(revision == code_revisions().head)


def _wait_for_the_schema(socket_dir: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if asyncio.run(_migrated(str(socket_dir))):
            return
        time.sleep(0.2)
    raise AssertionError("the worker's embedded Postgres was not migrated")


def _wait_for_a_stuck_worker(socket_dir: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if asyncio.run(_waiting_on_the_lock(str(socket_dir))):
            return
        time.sleep(0.2)
    raise AssertionError("no worker statement waited on the locked table")


def _stop_and_time(process: subprocess.Popen[str]) -> tuple[float, str]:
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=STOPPED_WITHIN)
    assert process.returncode == 0, output
    return time.monotonic() - started, output


def test_serve_stops_within_its_grace_during_a_stuck_claim_and_stops_postgres(
    data_dir: Path,
) -> None:
    port = free_port()
    env = service_env(DATA_DIR=str(data_dir), PORT=str(port), **SETTINGS)
    pgdata = data_dir.resolve() / "postgres"
    with running_service(env) as service:
        wait_ready(port, service)
        with TableLock(pgdata):
            _wait_for_a_stuck_worker(pgdata)
            took, output = _stop_and_time(service)
    assert took < GRACE, f"the stop waited for the grace period ({took:.1f} s):\n{output}"
    assert wait_no_postgres(pgdata) == [], "the stop left the embedded Postgres running"


def test_a_worker_stops_within_its_grace_during_a_stuck_claim_and_stops_postgres(
    data_dir: Path,
) -> None:
    env = service_env(DATA_DIR=str(data_dir), **SETTINGS)
    pgdata = data_dir.resolve() / "postgres"
    worker = subprocess.Popen(
        [sys.executable, "-m", "app", "worker"], cwd=REPO, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        _wait_for_the_schema(pgdata)
        with TableLock(pgdata):
            _wait_for_a_stuck_worker(pgdata)
            took, output = _stop_and_time(worker)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert took < GRACE, f"the stop waited for the grace period ({took:.1f} s):\n{output}"
    assert wait_no_postgres(pgdata) == [], "the stop left the embedded Postgres running"
