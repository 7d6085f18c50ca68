"""Start-up says in one block what is not configured and what that disables; /readyz lists the
same as information, without turning unready for it."""

from __future__ import annotations

import logging

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.main import create_app
from app.unconfigured import log_unconfigured, unconfigured


def _names(settings: Settings, *, api: bool = True, worker: bool = True) -> list[str]:
    return [", ".join(gap.settings) for gap in unconfigured(settings, api=api, worker=worker)]


def test_a_bare_start_names_all_four_gaps() -> None:
    assert _names(Settings(_env_file=None)) == [
        "OPS_API_TOKENS", "VOUCHERIFY_WEBHOOK_SECRET", "BRAZE_API_KEY",
        "VOUCHERIFY_APP_ID, VOUCHERIFY_APP_TOKEN",
    ]  # fmt: skip


def test_an_api_without_a_worker_does_not_mention_the_worker_s_peers() -> None:
    assert _names(Settings(_env_file=None), worker=False) == [
        "OPS_API_TOKENS", "VOUCHERIFY_WEBHOOK_SECRET",
    ]  # fmt: skip


def test_a_worker_mentions_only_braze_and_voucherify() -> None:
    names = _names(Settings(_env_file=None, voucherify_app_id="a"), api=False)
    assert names == ["BRAZE_API_KEY", "VOUCHERIFY_APP_ID, VOUCHERIFY_APP_TOKEN"]


def test_a_complete_configuration_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(
        _env_file=None, ops_api_tokens="me:write:token-123", voucherify_webhook_secret="s3cret",
        braze_api_key="k", voucherify_app_id="a", voucherify_app_token="t",
    )  # fmt: skip
    assert unconfigured(settings, api=True, worker=True) == []
    with caplog.at_level(logging.INFO):
        log_unconfigured(logging.getLogger("t"), [])
    assert caplog.records == []


def test_the_gaps_are_one_warning_with_a_line_each(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        log_unconfigured(logging.getLogger("t"), unconfigured(
            Settings(_env_file=None), api=True, worker=True
        ))  # fmt: skip
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    lines = record.getMessage().splitlines()
    assert lines[0].startswith("not configured")
    assert lines[1] == "  OPS_API_TOKENS: the ops API: every /api/v1 call answers 401"
    assert len(lines) == 5
    assert [gap["settings"] for gap in vars(record)["not_configured"]][2] == ["BRAZE_API_KEY"]


async def test_readyz_lists_what_is_not_configured_and_stays_ready(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.get("/readyz")
    assert answer.status_code == 200
    gaps = answer.json()["not_configured"]
    # The test app has tokens and a webhook secret, and runs no worker.
    assert gaps == []


async def test_readyz_says_what_a_missing_token_disables(
    settings: Settings, engine: AsyncEngine
) -> None:
    app = create_app(settings.model_copy(update={"ops_api_tokens": []}), engine=engine)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            answer = await client.get("/readyz")
    assert answer.status_code == 200, answer.text
    assert answer.json()["not_configured"] == [
        {"settings": ["OPS_API_TOKENS"], "disables": "the ops API: every /api/v1 call answers 401"}
    ]
