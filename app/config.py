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

    # Every field has a description: docs/configuration.md is generated from them (make docs).

    # Database.
    database_url: SecretStr | None = Field(
        default=None,
        description="Postgres URL, `postgresql://user:password@host:5432/dbname`. Unset: an "
        "embedded Postgres under DATA_DIR, started and stopped by the process.",
    )
    data_dir: Path = Field(
        default=Path(".data"), description="Where the embedded Postgres keeps its data and log."
    )
    db_pool_size: int = Field(
        default=10, ge=1, le=200,
        description="Connections per process (the pool may grow to twice this under load).",
    )  # fmt: skip
    db_connect_timeout_seconds: float = Field(
        default=5.0, gt=0, description="Seconds to wait for a connection to Postgres."
    )

    # HTTP server.
    host: str = Field(
        default="127.0.0.1",
        description="Where `serve` listens (the Docker image sets 0.0.0.0); also the address "
        "of `worker --metrics-port`.",
    )
    port: int = Field(default=8000, ge=1, le=65535, description="Where `serve` listens.")
    log_level: str = Field(
        default="info",
        description="debug, info, warning, error or critical. Per-request client lines and "
        "migration steps show at debug only.",
    )

    # Voucherify.
    voucherify_webhook_secret: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="The HMAC key of incoming webhooks (Voucherify: the webhook's secret key); "
        "several, comma separated, during a rotation. Unset: every webhook answers 401.",
    )
    webhook_max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="Larger webhook bodies get 413."
    )
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
    unauthenticated_body_budget_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=64 * 1024,
        description="Bytes of request bodies held, across all requests, before their sender is "
        "known: webhook bodies still arriving (their signature is checked once the body is "
        "complete). A new chunk that would go over it refuses the requests that have held such "
        "bytes longest (503, Retry-After) to make room; ops API bodies are read only after their "
        "token is checked and do not count.",
    )
    request_body_timeout_seconds: float = Field(
        default=10, gt=0,
        description="A request body (webhook or ops API) must arrive whole within this long of "
        "the request's headers, or the request gets 408. Voucherify gives up after 10 s.",
    )  # fmt: skip
    voucherify_api_url: str = Field(
        default="https://api.voucherify.io",
        description="Your cluster's API (https://us1.api.voucherify.io in the US, "
        "https://as1.api.voucherify.io in Asia).",
    )
    voucherify_app_id: str | None = Field(
        default=None,
        description="Integration key id: publishing codes (`code_source: publish`), customer "
        "look-ups and manual runs need it and the token. Unset: those wait.",
    )
    voucherify_app_token: SecretStr | None = Field(
        default=None, description="Integration key secret, with VOUCHERIFY_APP_ID."
    )
    voucherify_requests_per_minute: int = Field(
        default=100, ge=1,
        description="Our share of the project's Voucherify API budget (Business plans: 100 a "
        "minute for everything together).",
    )  # fmt: skip

    # Braze.
    braze_rest_url: str = Field(
        default="https://rest.iad-01.braze.com",
        description="Your Braze instance's REST endpoint (docs/operating.md lists them).",
    )
    braze_api_key: SecretStr | None = Field(
        default=None,
        description="A REST API key with users.track. Unset: nothing is sent; deliveries wait "
        "in the queue (codes, runs, replays and retention still run).",
    )
    braze_batch_size: int = Field(
        default=75, ge=1, le=75, description="Objects per /users/track request (Braze: 75 at most)."
    )
    braze_rate_limit_requests: int = Field(
        default=1000, ge=1, le=3000,
        description="Our share of the workspace's /users/track budget (Braze: 3,000 requests per "
        "3 s, shared with every other producer), for all workers together.",
    )  # fmt: skip
    braze_rate_limit_window_seconds: float = Field(
        default=3.0, gt=0, description="The window of BRAZE_RATE_LIMIT_REQUESTS, in seconds."
    )
    braze_timeout_seconds: float = Field(
        default=30.0, gt=0,
        description="Seconds to wait for Braze's answer before the try counts as failed; less "
        "than half of DELIVERY_LEASE_SECONDS.",
    )  # fmt: skip
    braze_concurrency: int = Field(
        default=4, ge=1, le=64,
        description="Requests in flight per worker process (each lane sends one batch at a time).",
    )  # fmt: skip
    braze_probe_seconds: float = Field(
        default=30.0, gt=0,
        description="While Braze refuses the key (401/403/404/415), or fails with nothing due: "
        "seconds between probes.",
    )  # fmt: skip

    # Delivery queue.
    retry_schedule: str = Field(
        default="5s,30s,2m,5m,15m,30m,1h,2h,4h,8h,8h",
        description="Waits between tries after a 5xx, a timeout or a lost connection; then the "
        "delivery is `dead` (about 24 h in all by default).",
    )
    delivery_lease_seconds: float = Field(
        default=120.0, ge=5,
        description="Seconds a worker holds what it claimed; then (a dead worker) others take it.",
    )  # fmt: skip
    worker_poll_seconds: float = Field(
        default=0.5, gt=0, description="Seconds an idle worker waits before looking again."
    )
    attribute_trust_days: float = Field(
        default=7.0, gt=0,
        description="Days a value Braze accepted is trusted to be still there (profiles are "
        "deleted, merged or edited by other tools); after that, an event repeating the value "
        "sends it again: at most one extra data point per user and attribute per period, and "
        "only when events repeat a value.",
    )  # fmt: skip
    worker_statement_timeout_seconds: float = Field(
        default=10.0, gt=0,
        description="Seconds a worker statement may run before Postgres cancels it (a claim "
        "takes milliseconds; bulk work runs in batches). A canceled statement is logged by "
        "name and counted in voucher_relay_worker_statement_timeouts_total; the lane carries "
        "on, and a stuck claim frees its locks instead of stalling delivery.",
    )  # fmt: skip

    # Ops API.
    ops_statement_timeout_seconds: float = Field(
        default=5.0, gt=0,
        description="Seconds an ops list read, a bulk replay's count or plan may run in "
        "Postgres; past it the answer is 503 `filter_too_slow` naming the filters that narrow "
        "it (every documented filter has an index: a wide time window on a long history is "
        "what reaches it).",
    )  # fmt: skip
    ops_api_tokens: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Bearer tokens of /api/v1, comma separated `name:scope:token` (scope `read` "
        "or `write`; each token once). Unset: every /api/v1 call answers 401.",
    )

    # Retention. At least 15 days: stored events are also what duplicates are recognised by,
    # and Voucherify support resends events up to 14 days old.
    retention_days: int = Field(
        default=30, ge=15,
        description="Days webhook events and audit rows are kept (finished runs and replays that "
        "long after they finished); workers prune every 10 minutes, never pending work.",
    )  # fmt: skip

    # Replays (events, distributions, bulk filters). Past a bound the request gets a 422.
    replay_max_window_days: int = Field(
        default=31, ge=1, description="Longest window of a distribution or bulk replay (days)."
    )
    replay_max_rows: int = Field(
        default=100_000, ge=1, description="Most rows one distribution or bulk replay may cover."
    )
    replay_inline_rows: int = Field(
        default=200, ge=0,
        description="Distribution replays of at most this many events run before the answer; "
        "larger ones in a worker.",
    )  # fmt: skip
    replay_batch_size: int = Field(
        default=500, ge=1, le=10_000,
        description="Rows per transaction of a background replay (a cancel lands between batches).",
    )  # fmt: skip
    replay_poll_seconds: float = Field(
        default=1.0, gt=0,
        description="Seconds an idle worker waits before looking for a queued replay again.",
    )  # fmt: skip
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
    metrics_enabled: bool = Field(default=True, description="/metrics on; false answers 404.")
    metrics_token: SecretStr | None = Field(
        default=None,
        description="When set, a scrape must send `Authorization: Bearer <token>`. Unset: "
        "/metrics is open like /healthz (counts and states, no ids or secrets).",
    )
    console_session_hours: float = Field(
        default=8.0, gt=0, le=24 * 30,
        description="Hours a sign-in to the ops console (/console) lasts; signing out ends it "
        "sooner, and so does removing its token from OPS_API_TOKENS.",
    )  # fmt: skip
    metrics_cache_seconds: float = Field(
        default=5.0, ge=0,
        description="Seconds each process reuses the numbers it read from Postgres (queue, "
        "deliveries, the Braze gate), so that many scrapes cost one query.",
    )  # fmt: skip
    prometheus_multiproc_dir: Path | None = Field(
        default=None,
        description="A directory every process of one host shares (compose: api and workers): "
        "each writes its counters there and any API answers a scrape with the sum. Unset: each "
        "process counts alone.",
    )

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
        from app.api.auth import parse_tokens

        parse_tokens([token.get_secret_value() for token in value])
        return value

    @field_validator("retry_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        from app.retry import parse_schedule

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
