"""`make env` writes .env from .env.example with a new token and secret, and never overwrites."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import Settings
from app.envfile import render, write

REPO = Path(__file__).resolve().parents[1]


def test_the_new_env_file_configures_the_ops_api_and_webhooks(tmp_path: Path) -> None:
    target = tmp_path / ".env"
    token, secret = write(target, REPO / ".env.example")
    settings = Settings(_env_file=target)
    assert [t.get_secret_value() for t in settings.ops_api_tokens] == [f"admin:write:{token}"]
    assert [s.get_secret_value() for s in settings.voucherify_webhook_secret] == [secret]
    assert target.stat().st_mode & 0o077 == 0, "only its owner may read it"
    # Everything else stays as the example has it: commented out, the defaults apply.
    assert settings.database_url is None and settings.braze_api_key is None


def test_each_env_file_gets_its_own_token(tmp_path: Path) -> None:
    first, _ = write(tmp_path / "a", REPO / ".env.example")
    second, _ = write(tmp_path / "b", REPO / ".env.example")
    assert first != second and len(first) >= 32


def test_an_existing_env_file_is_never_overwritten(tmp_path: Path) -> None:
    target = tmp_path / ".env"
    target.write_text("DATABASE_URL=postgresql://kept@db/relay\n")
    with pytest.raises(FileExistsError):
        write(target, REPO / ".env.example")
    assert target.read_text() == "DATABASE_URL=postgresql://kept@db/relay\n"


def test_an_example_without_the_lines_is_refused() -> None:
    with pytest.raises(ValueError, match="OPS_API_TOKENS"):
        render("# VOUCHERIFY_WEBHOOK_SECRET=\n", token="t", secret="s")
