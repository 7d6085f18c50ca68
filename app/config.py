"""Settings: the one place that reads the environment (and `.env`)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

SUPPORTED_DRIVERS = ("postgresql", "postgresql+asyncpg", "postgres")
# What both `logging` and uvicorn understand.
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_EXAMPLE_URL = "postgresql://user:password@host:5432/dbname"


class Settings(BaseSettings):
    # Errors never repeat a value given: it may be a secret (a token, a URL with a password).
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", hide_input_in_errors=True
    )

    # Database. Unset: an embedded Postgres under `data_dir` is started and owned by the process.
    database_url: SecretStr | None = None
    data_dir: Path = Path(".data")
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_connect_timeout_seconds: float = Field(default=5.0, gt=0)

    # HTTP server.
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: str = "info"

    # Voucherify: incoming webhook secrets (comma separated, for rotation) and the API.
    voucherify_webhook_secret: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    webhook_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    event_time_max_ahead_seconds: float = Field(
        default=86_400, gt=0,
        description="An event time more than this far ahead of the moment its webhook is "
        "received (a wrong clock, a `created_at` in year 9999) is replaced by the time "
        "received, with a note on each delivery: taken as it is, it would make every later "
        "event of that user `stale`. One day covers any real clock skew.",
    )  # fmt: skip
    api_max_body_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=64 * 1024,
        description="Largest /api/v1 request body, in bytes (larger ones get 413). The largest "
        "legitimate one is a run listing 10,000 customers (about 2.6 MB at 255 characters each); "
        "`distributions import` writes to the database directly, not through the API.",
    )
    voucherify_api_url: str = "https://api.voucherify.io"
    voucherify_app_id: str | None = None
    voucherify_app_token: SecretStr | None = None
    # Our share of the project's API budget (Business plans: 100 requests a minute).
    voucherify_requests_per_minute: int = Field(default=100, ge=1)

    # Braze.
    braze_rest_url: str = "https://rest.iad-01.braze.com"
    braze_api_key: SecretStr | None = None
    braze_batch_size: int = Field(default=75, ge=1, le=75)
    braze_rate_limit_requests: int = Field(default=1000, ge=1, le=3000)
    braze_rate_limit_window_seconds: float = Field(default=3.0, gt=0)
    braze_timeout_seconds: float = Field(default=30.0, gt=0)
    # Requests in flight per worker process (each lane sends one batch at a time).
    braze_concurrency: int = Field(default=4, ge=1, le=64)
    # While Braze refuses the key (401/403/404/415), or fails with nothing due: seconds between
    # probes.
    braze_probe_seconds: float = Field(default=30.0, gt=0)

    # Delivery queue.
    retry_schedule: str = "5s,30s,2m,5m,15m,30m,1h,2h,4h,8h,8h"
    delivery_lease_seconds: float = Field(default=120.0, ge=5)
    worker_poll_seconds: float = Field(default=0.5, gt=0)
    # A value Braze accepted is trusted to be still there this long (profiles are deleted,
    # merged or edited by other tools); after it, an event repeating the value sends it again.
    attribute_trust_days: float = Field(default=7.0, gt=0)
    # Postgres cancels a worker statement that runs longer (a claim takes milliseconds; bulk
    # work runs in batches): a stuck claim fails loudly and frees its locks instead of stalling
    # delivery for minutes.
    worker_statement_timeout_seconds: float = Field(default=10.0, gt=0)

    # Ops API bearer tokens: comma separated `name:scope:token` (scope `read` or `write`).
    ops_api_tokens: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)

    # Retention of raw bodies and audit rows. At least 15 days: stored events are also what
    # duplicates are recognised by, and Voucherify support resends events up to 14 days old.
    retention_days: int = Field(default=30, ge=15)

    # Replays (events, distributions, bulk filters). Past a bound the request gets a 422.
    replay_max_window_days: int = Field(default=31, ge=1)
    replay_max_rows: int = Field(default=100_000, ge=1)
    # Distribution replays of at most this many events run inline; larger ones in the worker.
    replay_inline_rows: int = Field(default=200, ge=0)
    # Rows per transaction of a background replay (cancel takes effect between batches).
    replay_batch_size: int = Field(default=500, ge=1, le=10_000)
    # Seconds an idle worker waits before looking for a queued replay again.
    replay_poll_seconds: float = Field(default=1.0, gt=0)
    replay_max_batch_attempts: int = Field(
        default=5, ge=1,
        description="A background replay whose current batch fails this many times (each try "
        "after the lease, DELIVERY_LEASE_SECONDS, runs out) stops as `failed` with the error.",
    )  # fmt: skip

    # Manual distribution runs.
    run_max_failures: int = Field(
        default=12, ge=1,
        description="A run gives up (`failed`) when Voucherify is unavailable this many times "
        "in a row while it pages the audience. It waits 30 s after the first failure, twice as "
        "long after each next one, at most 10 minutes: the default 12 gives up after about 75 "
        "minutes of waiting. A stored page starts the count again; a 429 asking for a long wait "
        "(a quota) is waited out and not counted.",
    )  # fmt: skip
    # Prometheus metrics: GET /metrics on the API (and `worker --metrics-port`).
    metrics_enabled: bool = True
    # When set, a scrape must send `Authorization: Bearer <token>`.
    metrics_token: SecretStr | None = None
    # Seconds the Postgres-held numbers (queue, deliveries, Braze gate) are cached per process.
    metrics_cache_seconds: float = Field(default=5.0, ge=0)
    # Shared by every process of one host (compose: api and workers): each writes its counters
    # there and any of them answers a scrape with the sum. Unset: each process counts alone.
    prometheus_multiproc_dir: Path | None = None

    @field_validator("voucherify_webhook_secret", "ops_api_tokens", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _known_log_level(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip().lower()
            if value not in LOG_LEVELS:
                raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}, not {value!r}")
        return value

    @field_validator("ops_api_tokens")
    @classmethod
    def _well_formed_tokens(cls, value: list[SecretStr]) -> list[SecretStr]:
        from app.ops.auth import parse_tokens

        parse_tokens([token.get_secret_value() for token in value])
        return value

    @field_validator("retry_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        from app.delivery.retry import parse_schedule

        parse_schedule(value)
        return value

    @field_validator(
        "database_url", "braze_api_key", "voucherify_app_id", "voucherify_app_token",
        "metrics_token", "prometheus_multiproc_dir", mode="before",
    )  # fmt: skip
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _braze_call_fits_in_a_lease(self) -> Settings:
        # A send starts within half the lease of its claim and must end before the lease does,
        # or another worker could take the same users while the call is still in flight.
        if self.braze_timeout_seconds >= self.delivery_lease_seconds / 2:
            raise ValueError(
                f"BRAZE_TIMEOUT_SECONDS ({self.braze_timeout_seconds:g}) must be less than half "
                f"of DELIVERY_LEASE_SECONDS ({self.delivery_lease_seconds:g})"
            )
        return self

    @field_validator("database_url")
    @classmethod
    def _parsable_postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_database_url(value.get_secret_value())
        return value


def parse_database_url(raw: str) -> URL:
    """Parse a Postgres URL and point it at the asyncpg driver; ValueError says what is wrong."""
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ValueError(
            "is not a URL (expected postgresql://user:password@host:5432/dbname)"
        ) from None
    if url.drivername not in SUPPORTED_DRIVERS:
        raise ValueError(f"scheme {url.drivername!r} is not Postgres (expected postgresql://...)")
    if not url.database:
        raise ValueError(f"names no database (expected {_EXAMPLE_URL})")
    return url.set(drivername="postgresql+asyncpg")


@lru_cache
def get_settings() -> Settings:
    return Settings()
