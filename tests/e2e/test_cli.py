"""The command line as a user runs it: embedded Postgres lifecycle, migrations, bad settings."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import URL

from app.db.embedded import EmbeddedPostgres
from tests.e2e.processes import (
    REPO,
    free_port,
    postgres_pids,
    run_cli,
    running_service,
    service_env,
    wait_no_postgres,
    wait_ready,
)
from tests.postgres import scratch_database

pytestmark = pytest.mark.e2e


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "data"
    # Never leave a server behind, whatever the test did.
    for pid in postgres_pids(tmp_path / "data" / "postgres"):
        subprocess.run(["kill", "-KILL", str(pid)], check=False)


def _sql(data_dir: Path, query: str) -> object:
    return asyncio.run(_fetch(str(data_dir.resolve() / "postgres"), query))


async def _fetch(socket_dir: str, query: str) -> object:
    connection = await asyncpg.connect(host=socket_dir, user="postgres", database="voucher_relay")
    try:
        return await connection.fetchval(query)
    finally:
        await connection.close()


def _stop(process: subprocess.Popen[str], signum: int) -> str:
    process.send_signal(signum)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    return output


def test_serve_owns_embedded_postgres_stops_it_on_ctrl_c_and_keeps_data(data_dir: Path) -> None:
    port = free_port()
    env = service_env(DATA_DIR=str(data_dir), PORT=str(port))
    pgdata = data_dir.resolve() / "postgres"

    with running_service(env) as first:
        wait_ready(port, first)
        assert postgres_pids(pgdata), "serve should have started an embedded Postgres"
        _sql(
            data_dir,
            "INSERT INTO distributions (name, triggers, code_source, identity, mapping)"
            " VALUES ('kept', '{customer.segment.entered}', '{}', '{}', '[]') RETURNING 1",
        )
        _stop(first, signal.SIGINT)
    assert wait_no_postgres(pgdata) == [], "Ctrl-C left a postgres process behind"

    with running_service(env) as second:
        wait_ready(port, second)
        kept = _sql(data_dir, "SELECT count(*) FROM distributions WHERE name='kept'")
        assert kept == 1, "the second start must keep the first start's data"
        _stop(second, signal.SIGTERM)
    assert wait_no_postgres(pgdata) == [], "SIGTERM left a postgres process behind"


def test_postgres_orphaned_by_a_killed_service_is_adopted_and_stopped(data_dir: Path) -> None:
    port = free_port()
    env = service_env(DATA_DIR=str(data_dir), PORT=str(port))
    pgdata = data_dir.resolve() / "postgres"

    with running_service(env) as first:
        wait_ready(port, first)
        first.kill()
        first.wait()
    orphans = postgres_pids(pgdata)
    assert orphans, "SIGKILL cannot stop Postgres: it should still run here"

    with running_service(env) as second:
        wait_ready(port, second)
        assert postgres_pids(pgdata) == orphans, "the running server should be reused"
        _stop(second, signal.SIGTERM)
    assert wait_no_postgres(pgdata) == []


def test_a_second_process_reuses_the_server_without_stopping_it(data_dir: Path) -> None:
    owner = EmbeddedPostgres(data_dir)
    owner.start()
    try:
        guest = (
            "import sys; from pathlib import Path; from app.db.embedded import EmbeddedPostgres;"
            "guest = EmbeddedPostgres(Path(sys.argv[1])); guest.start(); print(guest.owned);"
            "guest.stop()"
        )
        result = subprocess.run(
            [sys.executable, "-c", guest, str(data_dir)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert result.stdout.strip() == "False", "a second process must not own the server"
        assert owner.running_pid() is not None, "a guest must not stop the owner's server"
    finally:
        owner.stop()
    assert owner.running_pid() is None


def test_the_embedded_server_does_not_zero_fill_new_wal_segments(data_dir: Path) -> None:
    server = EmbeddedPostgres(data_dir)
    server.start()
    try:
        assert _sql(data_dir, "SHOW wal_init_zero") == "off"
    finally:
        server.stop()


def test_a_command_beside_serve_leaves_its_postgres_running_and_says_so(data_dir: Path) -> None:
    env = service_env(DATA_DIR=str(data_dir))
    owner = EmbeddedPostgres(data_dir)  # what `serve` (make run) does first
    owner.start()
    try:
        beside = run_cli("distributions", "export", env=env)
        assert beside.returncode == 0, beside.stderr
        assert owner.running_pid() is not None
        assert "embedded Postgres stopped" not in beside.stderr
        assert "embedded Postgres left running for the process that started it" in beside.stderr
    finally:
        owner.stop()
    alone = run_cli("distributions", "export", env=env)
    assert alone.returncode == 0, alone.stderr
    assert "embedded Postgres stopped" in alone.stderr
    assert wait_no_postgres(data_dir.resolve() / "postgres") == []


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_unparsable_database_url_fails_with_one_line_naming_the_setting() -> None:
    result = run_cli("serve", env=service_env(DATABASE_URL="mysql://root@localhost/relay"))
    line = _one_error_line(result)
    assert "DATABASE_URL" in line and "is not Postgres" in line


def test_unreachable_database_fails_with_one_line_naming_the_setting() -> None:
    env = service_env(DATABASE_URL="postgresql://relay:hunter2@127.0.0.1:1/relay")
    line = _one_error_line(run_cli("serve", env=env))
    assert "DATABASE_URL" in line and "cannot connect" in line
    assert "hunter2" not in line, "the password must never be printed"


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("DATA_DIR", "/proc/nope", ["DATA_DIR: cannot keep the embedded Postgres in /proc/nope"]),
        ("LOG_LEVEL", "loud", ["LOG_LEVEL: must be one of debug, info, warning, error"]),
        ("BRAZE_TIMEOUT_SECONDS", "70", ["BRAZE_TIMEOUT_SECONDS (70)", "DELIVERY_LEASE_SECONDS"]),
        ("OPS_API_TOKENS", "ops:write:ok-token,token-4321", ["OPS_API_TOKENS: entry 2 is not"]),
        ("OPS_API_TOKENS", "ops:token-4321", ["OPS_API_TOKENS: entry 1 is not name:scope:token"]),
        (
            "OPS_API_TOKENS",
            "a:read:token-4321,b:write:token-4321",
            ["OPS_API_TOKENS: entries 1 and 2 have the same token"],
        ),
    ],
)
def test_a_bad_setting_stops_serve_with_one_line_naming_it(
    setting: str, value: str, named: list[str], data_dir: Path
) -> None:
    env = service_env(DATA_DIR=str(data_dir), PORT=str(free_port()))
    env[setting] = value
    line = _one_error_line(run_cli("serve", env=env))
    assert line.startswith("voucher-relay: configuration error: "), line
    assert all(part in line for part in named), line
    assert ": :" not in line and "Value error" not in line, line
    assert "token-4321" not in line, "a token must never be printed"


def test_serve_on_a_port_in_use_stops_with_one_line_and_leaves_no_postgres(
    data_dir: Path,
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        env = service_env(DATA_DIR=str(data_dir), HOST="127.0.0.1", PORT=str(port))
        line = _one_error_line(run_cli("serve", env=env))
    assert line == (
        f"voucher-relay: configuration error: PORT: cannot listen on 127.0.0.1:{port}: "
        "address already in use"
    )
    assert wait_no_postgres(data_dir.resolve() / "postgres") == [], "a postgres was left behind"


def test_a_worker_metrics_port_in_use_stops_with_one_line_and_leaves_no_postgres(
    data_dir: Path,
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        env = service_env(DATA_DIR=str(data_dir), HOST="127.0.0.1")
        line = _one_error_line(run_cli("worker", "--metrics-port", str(port), env=env))
    assert line == (
        f"voucher-relay: configuration error: --metrics-port: cannot listen on 127.0.0.1:{port}: "
        "address already in use"
    )
    assert wait_no_postgres(data_dir.resolve() / "postgres") == [], "a postgres was left behind"


def test_serve_on_an_unresolvable_host_stops_with_one_line_naming_it(data_dir: Path) -> None:
    env = service_env(DATA_DIR=str(data_dir), PORT=str(free_port()))
    line = _one_error_line(run_cli("serve", "--host", "no-such-host.invalid", env=env))
    assert line.startswith(
        "voucher-relay: configuration error: --host: cannot listen on no-such-host.invalid:"
    ), line
    assert wait_no_postgres(data_dir.resolve() / "postgres") == []


@pytest.mark.parametrize(
    ("command", "keys"),
    [
        ("braze-emulator", {"BRAZE_API_KEY": "sandbox-key"}),
        ("voucherify-emulator", {"VOUCHERIFY_APP_ID": "app", "VOUCHERIFY_APP_TOKEN": "token"}),
    ],
)
def test_an_emulator_on_a_port_in_use_stops_with_one_line(
    command: str, keys: dict[str, str]
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run_cli(
            command, "--host", "127.0.0.1", "--port", str(port), env=service_env(**keys)
        )
    assert _one_error_line(result) == (
        f"voucher-relay: configuration error: --port: cannot listen on 127.0.0.1:{port}: "
        "address already in use"
    )


def test_migrate_upgrades_a_configured_database(server_url: URL) -> None:
    with scratch_database(server_url, prefix="vr_cli_migrate") as url:
        plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
        result = run_cli("migrate", env=service_env(DATABASE_URL=plain))
        assert result.returncode == 0, result.stderr

        async def revision() -> object:
            connection = await asyncpg.connect(
                host=url.query.get("host") or url.host,
                port=url.port,
                user=url.username,
                password=url.password,
                database=url.database,
            )
            try:
                return await connection.fetchval("SELECT version_num FROM alembic_version")
            finally:
                await connection.close()

        assert asyncio.run(revision()) is not None


def test_distributions_export_and_import_round_trip(server_url: URL, tmp_path: Path) -> None:
    with scratch_database(server_url, prefix="vr_cli_files") as url:
        env = service_env(
            DATABASE_URL=url.set(drivername="postgresql").render_as_string(hide_password=False)
        )
        assert run_cli("migrate", env=env).returncode == 0
        source = tmp_path / "in.yaml"
        source.write_text(
            "distributions:\n"
            "  - name: welcome-code\n"
            "    triggers: [customer.segment.entered]\n"
            "    mapping:\n"
            "      - {source: voucher.code, attribute: welcome_code}\n"
        )
        dry = run_cli("distributions", "import", str(source), "--dry-run", env=env)
        assert dry.returncode == 0, dry.stderr
        assert "dry run, nothing changed: created (1): welcome-code" in dry.stdout

        first = run_cli("distributions", "import", str(source), env=env)
        assert "created (1): welcome-code" in first.stdout, first.stderr
        second = run_cli("distributions", "import", str(source), env=env)
        assert "unchanged (1): welcome-code" in second.stdout

        exported = tmp_path / "out.json"
        assert run_cli("distributions", "export", "-o", str(exported), env=env).returncode == 0
        again = run_cli("distributions", "import", str(exported), env=env)
        assert "unchanged (1): welcome-code" in again.stdout

        broken = tmp_path / "broken.yaml"
        broken.write_text("distributions:\n  - name: x\n    triggers: [nope]\n    mapping: []\n")
        failed = run_cli("distributions", "import", str(broken), env=env)
        assert failed.returncode == 2, failed.stderr
        assert f"voucher-relay: {broken}: x: triggers: unknown trigger(s) ['nope']" in failed.stderr

        # A folder as the whole truth: --prune deletes what it no longer names.
        folder = tmp_path / "distributions"
        folder.mkdir()
        (folder / "other.yaml").write_text(source.read_text().replace("welcome-code", "other"))
        dry = run_cli("distributions", "import", str(folder), "--prune", "--dry-run", env=env)
        assert "dry run, nothing changed: deleted (1): welcome-code" in dry.stdout, dry.stderr
        pruned = run_cli("distributions", "import", str(folder), "--prune", env=env)
        assert "created (1): other" in pruned.stdout, pruned.stderr
        assert "deleted (1): welcome-code" in pruned.stdout
        listed = run_cli("distributions", "export", "--format", "json", env=env)
        assert [d["name"] for d in json.loads(listed.stdout)["distributions"]] == ["other"]


def test_import_checks_the_file_before_the_database(tmp_path: Path) -> None:
    # No database answers at this URL: the file's problem is what the user hears about.
    env = service_env(DATABASE_URL="postgresql://relay@127.0.0.1:1/relay")
    result = run_cli("distributions", "import", str(tmp_path / "missing.yaml"), env=env)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"voucher-relay: {tmp_path / 'missing.yaml'}: no such file or folder",
        "voucher-relay: nothing was changed",
    ]


def test_braze_emulator_command_serves_users_track() -> None:
    port = free_port()
    env = service_env(BRAZE_API_KEY="sandbox-key")
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "braze-emulator", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                httpx.get(f"{url}/_emulator/faults", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        answer = httpx.post(
            f"{url}/users/track",
            json={"attributes": [{"external_id": "u1", "code": "A"}]},
            headers={"Authorization": "Bearer sandbox-key"},
        )
        assert answer.status_code == 201 and answer.json()["message"] == "success"
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=20)


def test_braze_emulator_needs_a_key() -> None:
    line = _one_error_line(run_cli("braze-emulator", env=service_env(BRAZE_API_KEY="")))
    assert "BRAZE_API_KEY" in line
