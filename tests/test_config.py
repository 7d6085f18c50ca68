from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.config import Settings, parse_database_url


def test_database_url_is_pointed_at_asyncpg() -> None:
    url = parse_database_url("postgresql://relay:secret@db.internal:5433/relay")
    assert url.drivername == "postgresql+asyncpg"
    assert (url.host, url.port, url.database, url.password) == (
        "db.internal",
        5433,
        "relay",
        "secret",
    )


@pytest.mark.parametrize(
    ("raw", "complaint"),
    [
        ("not a url", "is not a URL"),
        ("mysql://root@localhost/relay", "is not Postgres"),
        ("postgresql://relay@localhost", "names no database"),
    ],
)
def test_unusable_database_url_says_why(raw: str, complaint: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, database_url=raw)
    assert complaint in str(caught.value)
    assert caught.value.errors()[0]["loc"] == ("database_url",)


def test_blank_database_url_means_embedded() -> None:
    assert Settings(_env_file=None, database_url="  ").database_url is None


def test_comma_separated_secrets_allow_rotation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOUCHERIFY_WEBHOOK_SECRET", "old-secret, new-secret")
    settings = Settings(_env_file=None)
    assert [s.get_secret_value() for s in settings.voucherify_webhook_secret] == [
        "old-secret",
        "new-secret",
    ]
    assert "old-secret" not in repr(settings)


def test_braze_batch_size_never_above_75() -> None:
    with pytest.raises(ValidationError):
        Settings(_env_file=None, braze_batch_size=76)


def test_env_example_documents_every_setting() -> None:
    from pathlib import Path

    example = (Path(__file__).resolve().parents[1] / ".env.example").read_text()
    documented = {
        line.split("=", 1)[0].lstrip("# ").strip()
        for line in example.splitlines()
        if "=" in line and line.lstrip("# ").split("=", 1)[0].strip().isupper()
    }
    expected = {name.upper() for name in Settings.model_fields}
    assert expected <= documented, f"undocumented in .env.example: {sorted(expected - documented)}"


def test_retention_keeps_at_least_the_resend_window() -> None:
    with pytest.raises(ValidationError):
        Settings(_env_file=None, retention_days=7)


def test_a_braze_call_must_fit_in_half_a_lease() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, braze_timeout_seconds=60, delivery_lease_seconds=120)
    assert "BRAZE_TIMEOUT_SECONDS (60) must be less than half of DELIVERY_LEASE_SECONDS" in str(
        caught.value
    )
    assert Settings(_env_file=None, braze_timeout_seconds=59, delivery_lease_seconds=120)


@pytest.mark.parametrize("level", ["debug", "INFO", " Warning ", "error", "critical"])
def test_log_level_is_a_known_level_in_any_case(level: str) -> None:
    assert Settings(_env_file=None, log_level=level).log_level == level.strip().lower()


def test_an_unknown_log_level_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, log_level="loud")
    assert caught.value.errors()[0]["loc"] == ("log_level",)
    assert "must be one of debug, info, warning, error, critical" in str(caught.value)


@pytest.mark.parametrize(
    "tokens", ["bare-token-1234", "ops:token-1234", "a:read:token-1234,b:write:token-1234"]
)
def test_ops_api_tokens_other_than_name_scope_token_are_refused(tokens: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, ops_api_tokens=tokens)
    assert caught.value.errors()[0]["loc"] == ("ops_api_tokens",)
    assert "token-1234" not in str(caught.value)


def test_metrics_token_is_not_an_ops_token_entry() -> None:
    settings = Settings(_env_file=None, ops_api_tokens="ops:write:ops-secret", metrics_token="m")
    assert settings.metrics_token is not None and settings.metrics_token.get_secret_value() == "m"
