"""Schemathesis against the ops API: every /api/v1 operation in the app's OpenAPI at run time,
fed generated (valid and invalid) requests with a write token, must pass every check
Schemathesis has (schemathesis.toml): no 5xx, documented status codes, headers and bodies,
invalid data refused, valid data accepted (or refused naming a rule the schema cannot state).
`make fuzz` runs the same against a served relay with 200 examples per operation.

The app runs with its real lifespan on a real database (schemathesis serves it in its own event
loop, so it gets its own engine); the tables are emptied afterwards.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.python import asgi
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.main import create_app
from tests.conftest import READ_TOKEN, WRITE_TOKEN, WRITER, truncate_all
from tests.factories import WEBHOOK_SECRET, distribution_body, sample, signed

# Per operation; HYPOTHESIS_PROFILE=dev fuzzes ten times longer.
EXAMPLES = 250 if os.environ.get("HYPOTHESIS_PROFILE") == "dev" else 25
CONFIG = Path(__file__).resolve().parents[1] / "schemathesis.toml"


def _settings() -> Settings:
    return Settings(
        _env_file=None,
        ops_api_tokens=f"ops-team:write:{WRITE_TOKEN},grafana:read:{READ_TOKEN}",
        voucherify_webhook_secret=WEBHOOK_SECRET,
    )


# The OpenAPI document needs no database: read it at collection, so that each operation is a
# test of its own (and an endpoint added later is fuzzed without touching this file).
schema = schemathesis.openapi.from_dict(
    create_app(_settings()).openapi(), config=SchemathesisConfig.from_path(str(CONFIG))
).include(path_regex="^/api/v1/")
# Told as configuration (as `make fuzz` does with -H), not per call: a case generated without
# the header is then not taken for one the API wrongly accepts.
schema.config.update(headers=WRITER)


@pytest.fixture(scope="module")
async def emptied_afterwards(engine: AsyncEngine) -> AsyncIterator[None]:
    yield
    await truncate_all(engine)


@pytest.fixture(scope="module")
def ops_app(database_url: URL, emptied_afterwards: None) -> Iterator[asgi.ASGIApp]:
    """The app on the test database, served by schemathesis in its own event loop."""
    app: asgi.ASGIApp = create_app(_settings(), database_url=database_url)  # type: ignore[assignment]
    try:
        with asgi.get_client(app) as client:  # starts the lifespan
            created = client.post("/api/v1/distributions", json=distribution_body(), headers=WRITER)
            assert created.status_code == 201, created.text
            raw, headers = signed(sample("customer.segment.entered"))
            stored = client.post("/webhooks/voucherify", data=raw, headers=headers)
            assert stored.status_code == 202, stored.text
        yield app
    finally:
        asgi.shutdown_lifespans()  # closes the app's pools before the tables are emptied


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_ops_api_answers_every_generated_request_as_documented(
    case: schemathesis.Case[Any], ops_app: asgi.ASGIApp
) -> None:
    # The app for the checks' own requests too (ignored_auth probes the same call without a token).
    case.operation.schema.app = ops_app
    case.call_and_validate(app=ops_app)  # every check the config enables
