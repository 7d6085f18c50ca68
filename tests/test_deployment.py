"""The Docker image and the compose stack agree with the command line and the settings.

No Docker engine runs here, so this reads the files as Docker would and checks what they say.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.cli import build_parser
from app.config import Settings

REPO = Path(__file__).resolve().parents[1]
COMPOSE_TEXT = (REPO / "docker-compose.yml").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
DOCKERFILE = (REPO / "Dockerfile").read_text()
SERVICES: dict[str, Any] = COMPOSE["services"]
RELAY = ("migrate", "api", "worker", "braze-emulator", "voucherify-emulator")
EMULATORS = ("braze-emulator", "voucherify-emulator")


def test_the_stack_has_its_services() -> None:
    assert set(SERVICES) == {
        "postgres", "migrate", "api", "worker", "braze-emulator", "voucherify-emulator", "caddy",
    }  # fmt: skip
    for emulator in EMULATORS:
        assert SERVICES[emulator]["profiles"] == ["sandbox"]
    assert SERVICES["caddy"]["profiles"] == ["tls"]
    assert {"pgdata", "metrics", "caddy-data"} <= set(COMPOSE["volumes"])


@pytest.mark.parametrize("service", RELAY)
def test_every_command_is_one_the_cli_accepts(service: str) -> None:
    command = SERVICES[service]["command"]
    build_parser().parse_args(command)  # exits (fails the test) on an unknown command or option


def test_api_serves_http_only_and_workers_deliver() -> None:
    assert SERVICES["api"]["command"] == ["serve", "--no-worker"]
    assert SERVICES["worker"]["command"] == ["worker"]
    assert SERVICES["migrate"]["command"] == ["migrate"]


def test_postgres_does_not_zero_fill_new_wal_segments() -> None:
    # As the embedded server (tests/e2e/test_cli.py checks that one running).
    assert SERVICES["postgres"]["command"] == ["postgres", "-c", "wal_init_zero=off"]


@pytest.mark.parametrize("service", RELAY)
def test_every_variable_given_is_a_setting(service: str) -> None:
    settings = {name.upper() for name in Settings.model_fields}
    assert set(SERVICES[service]["environment"]) <= settings
    # The short form every Compose v2 reads (`path`/`required` needs 2.24): `make env` writes it.
    assert SERVICES[service]["env_file"] == ".env"


def test_api_and_workers_share_one_metrics_directory() -> None:
    volume = COMPOSE["volumes"]["metrics"]
    assert volume["driver_opts"]["type"] == "tmpfs"
    # Writable by the image's user: the Dockerfile's USER.
    user = re.search(r"^USER (\d+)$", DOCKERFILE, flags=re.MULTILINE)
    assert user and f"uid={user.group(1)}" in volume["driver_opts"]["o"]
    for service in ("api", "worker"):
        directory = SERVICES[service]["environment"]["PROMETHEUS_MULTIPROC_DIR"]
        assert f"metrics:{directory}" in SERVICES[service]["volumes"]
        assert (
            SERVICES[service]["environment"]["DATABASE_URL"]
            == (SERVICES["migrate"]["environment"]["DATABASE_URL"])
        )
    # Processes that count nothing do not need it (and have no such directory).
    for service in ("migrate", *EMULATORS):
        assert "PROMETHEUS_MULTIPROC_DIR" not in SERVICES[service]["environment"]


def test_the_order_of_start_up_is_database_then_migrations_then_the_rest() -> None:
    assert SERVICES["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for service in ("api", "worker"):
        assert SERVICES[service]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"}
        }


def test_the_database_url_is_dot_env_s_else_the_compose_postgres() -> None:
    # `environment:` wins over `env_file:`; the ${...} form takes .env's (or the shell's) value,
    # so a managed Postgres named in .env is the one used.
    env = SERVICES["postgres"]["environment"]
    url = SERVICES["api"]["environment"]["DATABASE_URL"]
    compose_postgres = (
        f"postgresql://{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}@postgres:5432/"
        f"{env['POSTGRES_DB']}"
    )
    assert url == f"${{DATABASE_URL:-{compose_postgres}}}"


@pytest.mark.parametrize("service", RELAY)
def test_settings_fixed_in_compose_can_all_come_from_dot_env(service: str) -> None:
    for name, value in SERVICES[service]["environment"].items():
        if name != "PROMETHEUS_MULTIPROC_DIR":  # a path inside the containers, not a choice
            assert re.fullmatch(rf"\$\{{{name}:-[^}}]*\}}", str(value)), (name, value)


def test_the_tls_profile_puts_caddy_in_front_of_the_api() -> None:
    caddy = SERVICES["caddy"]
    assert {"80:80", "443:443"} <= set(caddy["ports"])
    assert "./deploy/Caddyfile:/etc/caddy/Caddyfile:ro" in caddy["volumes"]
    assert caddy["depends_on"] == {"api": {"condition": "service_healthy"}}
    caddyfile = (REPO / "deploy" / "Caddyfile").read_text()
    assert "reverse_proxy api:8000" in caddyfile
    assert "{$RELAY_DOMAIN:localhost}" in caddyfile and "RELAY_DOMAIN" in caddy["environment"]
    # Metrics stay inside the network.
    assert re.search(r"@metrics path /metrics\s+respond @metrics 404", caddyfile)


def test_make_env_writes_what_compose_reads() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^env:.*\n\t@\$\(PYTHON\) -m app.envfile$", makefile, flags=re.MULTILINE)
    assert "make env" in COMPOSE_TEXT.split("services:")[0]


def test_the_compose_version_needed_is_stated() -> None:
    assert "Docker Compose v2 (`docker compose`, any 2.x release)" in COMPOSE_TEXT
    assert "Docker Compose v2" in (REPO / "docs" / "operating.md").read_text()


def test_healthchecks_ask_what_each_service_can_answer() -> None:
    assert "pg_isready" in " ".join(SERVICES["postgres"]["healthcheck"]["test"])
    assert "/readyz" in " ".join(SERVICES["api"]["healthcheck"]["test"])
    for emulator in EMULATORS:
        healthcheck = " ".join(SERVICES[emulator]["healthcheck"]["test"])
        port = SERVICES[emulator]["command"][-1]  # [..., "--port", port]
        assert f"127.0.0.1:{port}/_emulator/faults" in healthcheck
        assert SERVICES[emulator]["ports"] == [f"{port}:{port}"]
    assert "8000:8000" in SERVICES["api"]["ports"]


def test_the_image_runs_serve_as_a_non_root_user_with_a_healthcheck() -> None:
    stages = re.findall(r"^FROM (\S+)", DOCKERFILE, flags=re.MULTILINE)
    assert len(stages) == 2 and all(stage.startswith("python:3.11-slim") for stage in stages)
    assert re.search(r"^USER 10001$", DOCKERFILE, flags=re.MULTILINE)
    assert "HEALTHCHECK" in DOCKERFILE and "/healthz" in DOCKERFILE
    assert 'ENTRYPOINT ["python", "-m", "app"]' in DOCKERFILE
    assert 'CMD ["serve"]' in DOCKERFILE
    assert "HOST=0.0.0.0" in DOCKERFILE
    for needed in ("app", "migrations"):
        assert f"COPY {needed} ./{needed}" in DOCKERFILE


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(REPO / ".venv" / "bin" / "hadolint")
    result = subprocess.run([hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(
    subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0
    if shutil.which("docker") else True,
    reason="no docker compose here: the tests above stand in for `docker compose config`",
)  # fmt: skip
def test_docker_compose_accepts_the_file() -> None:
    result = subprocess.run(
        ["docker", "compose", "config", "--quiet"], cwd=REPO, capture_output=True
    )
    assert result.returncode == 0, result.stderr
