"""bench/console_pages.py on a small database: it serves the relay, times every console page
signed in, and explains each page's queries (the lead runs it on the 10-million-event one)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import URL

from app.config import Settings
from app.db import migrate
from app.main import create_app
from bench.console_pages import measure, report
from tests.factories import distribution_body, sample
from tests.postgres import scratch_database

pytestmark = pytest.mark.e2e
TOKEN = "seed-token"


@pytest.fixture
def loaded(server_url: URL) -> Iterator[str]:
    with scratch_database(server_url, prefix="vr_console_bench") as url:
        migrate.upgrade(url)
        asyncio.run(_load(url))
        yield url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _load(url: URL) -> None:
    """A distribution through the API; events, deliveries and attempts in SQL."""
    app = create_app(
        Settings(_env_file=None, ops_api_tokens=f"seed:write:{TOKEN}"), database_url=url
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://seed") as client:
            created = await client.post(
                "/api/v1/distributions", json=distribution_body(),
                headers={"Authorization": f"Bearer {TOKEN}"},
            )  # fmt: skip
            assert created.status_code == 201, created.text
    distribution_id = created.json()["id"]
    connection = await asyncpg.connect(url.set(drivername="postgresql").render_as_string(False))
    try:
        for n in range(40):
            body = sample("customer.segment.entered")
            body["event"]["id"] = f"evt_bench_{n}"
            user = f"user-{n % 10}"
            event_id = await connection.fetchval(
                """INSERT INTO webhook_events (voucherify_event_id, source_id, source_object,
                       event_type, customer_source_id, raw_body, signature_result, outcome)
                   VALUES ($1, 'distr_x', 'distribution', $2, $3, $4, 'valid_raw', 'matched')
                   RETURNING id""",
                body["event"]["id"], body["event"]["type"], user, json.dumps(body).encode(),
            )  # fmt: skip
            delivery_id = await connection.fetchval(
                """INSERT INTO deliveries (distribution_id, distribution_version, event_id,
                       braze_user_key, attributes, status)
                   VALUES ($1, 1, $2, $3, '{"welcome_code": "C"}', $4) RETURNING id""",
                uuid.UUID(distribution_id), event_id, f"external_id:{user}",
                ("delivered", "failed", "dead", "skipped")[n % 4],
            )  # fmt: skip
            await connection.execute(
                "INSERT INTO delivery_attempts (delivery_id, outcome, omitted) VALUES ($1, $2, $3)",
                delivery_id,
                "delivered",
                '{"unchanged": ["a"]}',
            )
    finally:
        await connection.close()


def test_every_console_page_is_timed_and_explained(loaded: str) -> None:
    timings = measure(loaded, loads=3)
    assert len(timings) >= 15
    for timing in timings:
        assert timing.status == 200, timing.path
        assert len(timing.millis) == 3 and timing.p50 > 0
        assert timing.plans, f"no query recorded for {timing.path}"
        assert all("Execution Time" in p["plan"] for p in timing.plans)
    customer = next(t for t in timings if t.path.startswith("/console/customer?q=user-"))
    assert any("customer_source_id" in p["sql"] for p in customer.plans)
    assert "slowest p99" in report(timings)
