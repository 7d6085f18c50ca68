"""Logs are JSON lines with the request id, and no configured secret ever reaches them, the
error bodies or the audit rows."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.main import create_app
from app.observability import (
    JsonFormatter,
    RedactSecrets,
    ServerNames,
    configure_logging,
    request_id_from,
    secrets_of,
)
from tests.conftest import committing_app_client, truncate_all
from tests.factories import distribution_body, sample, signed

WEBHOOK_SECRET = "whsec-4f1b9c2d7e"
OPS_TOKEN = "ops-token-8a7b6c5d4e"
BRAZE_KEY = "braze-key-1c2d3e4f5a"
VOUCHERIFY_TOKEN = "vf-token-9z8y7x6w"
SECRETS = (WEBHOOK_SECRET, OPS_TOKEN, BRAZE_KEY, VOUCHERIFY_TOKEN, "db-pass-5r4t3y")


@pytest.fixture
def secret_settings() -> Settings:
    return Settings(
        _env_file=None, voucherify_webhook_secret=WEBHOOK_SECRET,
        ops_api_tokens=f"ops:write:{OPS_TOKEN}", braze_api_key=BRAZE_KEY,
        voucherify_app_id="app", voucherify_app_token=VOUCHERIFY_TOKEN,
        database_url="postgresql://relay:db-pass-5r4t3y@db.internal:5432/relay",
    )  # fmt: skip


@pytest.fixture
def captured(secret_settings: Settings) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactSecrets(secrets_of(secret_settings)))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def test_every_kind_of_secret_is_known(secret_settings: Settings) -> None:
    assert set(secrets_of(secret_settings)) == set(SECRETS)


def test_an_ops_token_holding_colons_is_redacted_whole() -> None:
    settings = Settings(_env_file=None, ops_api_tokens="ops:write:first-half:second-half")
    assert "first-half:second-half" in secrets_of(settings)


def test_secrets_in_messages_fields_and_tracebacks_are_redacted(captured: io.StringIO) -> None:
    log = logging.getLogger("app.test")
    log.info("calling Braze with %s", BRAZE_KEY, extra={"token": OPS_TOKEN})
    try:
        raise RuntimeError("connect failed for postgresql://relay:db-pass-5r4t3y@db/relay")
    except RuntimeError:
        log.exception("database error")
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    assert lines[0]["message"] == "calling Braze with [redacted]"
    assert lines[0]["token"] == "[redacted]" and lines[0]["level"] == "info"
    assert "[redacted]" in lines[1]["exception"]
    assert not any(secret in captured.getvalue() for secret in SECRETS)


async def test_traffic_with_known_secrets_leaves_none_in_logs_bodies_or_rows(
    secret_settings: Settings, engine: AsyncEngine, captured: io.StringIO
) -> None:
    settings = secret_settings.model_copy(update={"database_url": None})
    app = create_app(settings, engine=engine)
    bodies: list[str] = []
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                auth = {"Authorization": f"Bearer {OPS_TOKEN}"}
                created = await client.post(
                    "/api/v1/distributions", json=distribution_body(), headers=auth
                )
                bodies.append(created.text)
                raw, headers = signed(sample("customer.segment.entered"), secret=WEBHOOK_SECRET)
                accepted = await client.post("/webhooks/voucherify", content=raw, headers=headers)
                assert accepted.status_code == 202
                assert accepted.headers["x-request-id"]
                bodies.append(accepted.text)
                wrong, headers = signed(sample("customer.order.paid"), secret="not-the-secret")
                bodies.append(
                    (await client.post("/webhooks/voucherify", content=wrong, headers=headers)).text
                )
                bodies.append(
                    (
                        await client.get("/api/v1/events", headers={"Authorization": "Bearer nope"})
                    ).text
                )
                bodies.append((await client.get("/readyz")).text)
                events = await client.get(
                    "/api/v1/events", headers={**auth, "X-Request-Id": "req-42"}
                )
                assert events.headers["x-request-id"] == "req-42"
                bodies.append(events.text)
        async with engine.connect() as connection:
            rows = await connection.execute(
                text("SELECT row_to_json(t)::text FROM (SELECT * FROM webhook_events) t "
                     "UNION ALL SELECT row_to_json(t)::text FROM (SELECT * FROM deliveries) t "
                     "UNION ALL SELECT row_to_json(t)::text FROM (SELECT * FROM distributions) t")
            )  # fmt: skip
            stored = [row[0] for row in rows]
    finally:
        await truncate_all(engine)
    logs = captured.getvalue()
    assert '"voucherify_event_id"' in logs  # the webhook line carries its ids
    for secret in SECRETS:
        assert secret not in logs, f"a secret reached the logs: {secret[:4]}..."
        assert not any(secret in body for body in bodies), "a secret reached an answer"
        assert not any(secret in row for row in stored), "a secret reached the database"


def _json_line(record: logging.LogRecord, settings: Settings) -> dict[str, object]:
    RedactSecrets(secrets_of(settings)).filter(record)
    ServerNames().filter(record)
    parsed: dict[str, object] = json.loads(JsonFormatter().format(record))
    return parsed


def test_json_lines_carry_no_colored_copy_of_the_message(secret_settings: Settings) -> None:
    record = logging.LogRecord("uvicorn.error", logging.INFO, "", 0, "Started server", None, None)
    record.color_message = "Started server process [\x1b[36m%d\x1b[0m]"
    line = _json_line(record, secret_settings)
    assert "color_message" not in line and "\x1b" not in json.dumps(line)


def test_the_http_server_s_lines_are_not_logged_as_errors(secret_settings: Settings) -> None:
    record = logging.LogRecord(
        "uvicorn.error", logging.INFO, "", 0, "Application startup", None, None
    )
    assert _json_line(record, secret_settings)["logger"] == "uvicorn"


@pytest.mark.parametrize("library", ["httpx", "alembic"])
def test_per_request_and_migration_lines_wait_for_debug(library: str) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        configure_logging(Settings(_env_file=None), json_lines=True)
        assert not logging.getLogger(library).isEnabledFor(logging.INFO)
        configure_logging(Settings(_env_file=None, log_level="debug"), json_lines=True)
        assert logging.getLogger(library).isEnabledFor(logging.DEBUG)
    finally:
        logging.getLogger(library).setLevel(logging.NOTSET)
        root.handlers[:], root.level = handlers, level


@pytest.mark.parametrize(
    "given",
    [
        "x" * 60_000,
        "r" * 65,
        "",
        "two words",
        'quote"d',
        "tab\there",
        "semi;colon",
        "caf\u00e9",  # sent as Latin-1, as HTTP allows
        "<script>",
    ],
)
def test_a_request_id_that_is_long_or_not_plain_is_replaced_by_a_new_one(given: str) -> None:
    made = request_id_from(given)
    assert made != given and re.fullmatch(r"[0-9a-f]{32}", made)


@pytest.mark.parametrize("given", ["req-42", "r" * 64, "trace.id:A_b-9", "0af7651916cd43dd"])
def test_a_short_plain_request_id_is_kept(given: str) -> None:
    assert request_id_from(given) == given


async def test_a_60kb_request_id_reaches_neither_the_logs_nor_the_answers(
    settings: Settings, engine: AsyncEngine, captured: io.StringIO
) -> None:
    huge = "x" * 60_000
    async with committing_app_client(settings, engine) as client:
        raw, headers = signed(sample("customer.segment.entered"))
        webhook = await client.post(
            "/webhooks/voucherify", content=raw, headers={**headers, "X-Request-Id": huge}
        )
        health = await client.get("/healthz", headers={"X-Request-Id": huge})
    assert webhook.status_code == 202, webhook.text
    for answer in (webhook, health):
        assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["x-request-id"]), answer.headers
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    stored = next(line for line in lines if "voucherify_event_id" in line)
    assert stored["request_id"] == webhook.headers["x-request-id"]
    assert huge not in captured.getvalue()
