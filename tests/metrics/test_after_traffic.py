"""/metrics after real traffic: signed webhooks through the intake, a worker sending to the
Braze emulator (with a 429 and a 5xx), then one scrape parsed with Prometheus's text parser.

Per-process counters live in this test process and grow over the whole run: the assertions
compare a scrape before with a scrape after. What Postgres holds is asserted as is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from app import __version__
from app.config import Settings
from app.delivery.gate import workspace_key
from app.main import create_app
from app.metrics.collectors import DatabaseState
from tests.conftest import WRITER, truncate_all
from tests.delivery.conftest import BRAZE_KEY, Emulator, WorkerFactory, drain, statuses
from tests.factories import distribution_body, sample, signed
from tests.metrics.scrape import Samples, delta, parse, value

SEGMENT_ENTERED = "customer.segment.entered"


@pytest.fixture
def relay_settings(settings: Settings, emulator: Emulator) -> Settings:
    return settings.model_copy(
        update={"braze_rest_url": emulator.url, "braze_api_key": SecretStr(BRAZE_KEY)}
    )


@pytest.fixture
async def client(relay_settings: Settings, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    """The API, committing for real; the metrics' database reads are never cached here."""
    app = create_app(relay_settings, engine=engine)
    try:
        async with app.router.lifespan_context(app):
            app.state.metrics_database = DatabaseState(
                engine, workspace=_workspace(relay_settings), max_age=0, table_max_age=0
            )
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                yield client
    finally:
        await truncate_all(engine)


def _workspace(settings: Settings) -> str:
    assert settings.braze_api_key is not None
    return workspace_key(settings.braze_rest_url, settings.braze_api_key.get_secret_value())


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def webhook(n: int, event_type: str = SEGMENT_ENTERED) -> dict[str, Any]:
    body = sample(event_type)
    body["event"]["id"] = f"ev_metrics_{event_type}_{n}"
    body["data"]["customer"].update(id=f"cust_metrics_{n}", source_id=f"metrics-user-{n}")
    return body


async def post(client: httpx.AsyncClient, body: dict[str, Any] | bytes) -> httpx.Response:
    raw, headers = signed(body)
    return await client.post("/webhooks/voucherify", content=raw, headers=headers)


async def test_webhooks_are_counted_by_event_type_outcome_and_status(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post("/api/v1/distributions", json=distribution_body(), headers=WRITER)
    assert created.status_code == 201, created.text
    before = await scrape(client)

    assert (await post(client, webhook(1))).status_code == 202  # matched
    assert (await post(client, webhook(1))).status_code == 200  # the same event again
    assert (await post(client, webhook(2, "customer.order.paid"))).status_code == 202
    unknown = webhook(3)
    unknown["event"]["type"] = "customer.something.new"
    assert (await post(client, unknown)).status_code == 202  # stored as ignored
    raw, headers = signed(webhook(4))
    bad = await client.post(
        "/webhooks/voucherify", content=raw, headers={**headers, "x-voucherify-signature": "0"}
    )
    assert bad.status_code == 401
    assert (await post(client, b"not json")).status_code == 400
    assert (await post(client, b"x" * (1024 * 1024 + 1))).status_code == 413

    after = await scrape(client)
    name = "voucher_relay_webhooks_received_total"
    expected = {
        (SEGMENT_ENTERED, "matched", "202"): 1,
        (SEGMENT_ENTERED, "duplicate", "200"): 1,
        ("customer.order.paid", "unmatched", "202"): 1,
        ("other", "ignored", "202"): 1,
        ("", "rejected", "401"): 1,
        ("", "rejected", "400"): 1,
        ("", "rejected", "413"): 1,
    }
    for (event_type, outcome, status), count in expected.items():
        got = delta(before, after, name, event_type=event_type, outcome=outcome, status=status)
        assert got == count, (event_type, outcome, status)
    total = sum(v for (n, _), v in after.items() if n == name) - sum(
        v for (n, _), v in before.items() if n == name
    )
    assert total == 7
    # The matched webhook's delivery waits in the queue, due now.
    assert value(after, "voucher_relay_queue_deliveries", status="pending") == 1
    assert value(after, "voucher_relay_queue_due_deliveries") == 1
    assert value(after, "voucher_relay_deliveries", status="pending", skip_reason="") == 1
    assert value(after, "voucher_relay_database_up") == 1
    assert value(after, "voucher_relay_processes", role="api", version=__version__) >= 1


async def test_a_worker_run_shows_in_every_metric(
    client: httpx.AsyncClient,
    relay_settings: Settings,
    pool: asyncpg.Pool,
    emulator: Emulator,
    make_worker: WorkerFactory,
) -> None:
    created = await client.post("/api/v1/distributions", json=distribution_body(), headers=WRITER)
    assert created.status_code == 201, created.text
    for n in (1, 2, 3):
        assert (await post(client, webhook(n))).status_code == 202
    # Braze already has user 3's values: both attributes are left out, the delivery skipped.
    await pool.execute(
        """
        INSERT INTO attribute_state (braze_user_key, attribute, value, event_time)
        SELECT braze_user_key, a.key, a.value, event_time - interval '1 day'
        FROM deliveries, jsonb_each(attributes) AS a
        WHERE braze_user_key = 'external_id:metrics-user-3' AND a.key LIKE 'welcome_code%'
        """
    )
    # One delivery scheduled for later: queued, not due.
    await pool.execute(
        "UPDATE deliveries SET next_attempt_at = now() + interval '1 hour'"
        " WHERE braze_user_key = 'external_id:metrics-user-2'"
    )
    queued = await scrape(client)
    assert value(queued, "voucher_relay_queue_deliveries", status="pending") == 3
    assert value(queued, "voucher_relay_queue_deliveries", status="in_flight") == 0
    assert value(queued, "voucher_relay_queue_due_deliveries") == 2
    assert 0 <= value(queued, "voucher_relay_queue_oldest_due_age_seconds") < 600
    assert value(queued, "voucher_relay_braze_gate_state", state="open") == 1
    await pool.execute("UPDATE deliveries SET next_attempt_at = now() - interval '90 seconds'")
    aged = await scrape(client)
    assert 90 <= value(aged, "voucher_relay_queue_oldest_due_age_seconds") < 600
    assert value(aged, "voucher_relay_queue_due_deliveries") == 3

    emulator.state.faults.fail_next(1, status=429, retry_after=1)
    emulator.state.faults.fail_next(1, status=503)
    worker = await make_worker(workspace=_workspace(relay_settings))
    # As if another worker had just met a 429: everyone waits at the gate until the pause ends.
    await worker.gate.pause(until=datetime.now(UTC) + timedelta(seconds=0.3))
    await drain(worker)
    assert await statuses(pool) == {"delivered": 2, "skipped": 1}
    after = await scrape(client)

    requests = "voucher_relay_braze_requests_total"
    assert delta(aged, after, requests, status_class="429", kind="rate_limited") == 1
    assert delta(aged, after, requests, status_class="5xx", kind="retry") == 1
    assert delta(aged, after, requests, status_class="2xx", kind="delivered") == 1
    assert delta(aged, after, "voucher_relay_braze_request_duration_seconds_count") == 3
    assert delta(aged, after, "voucher_relay_braze_request_duration_seconds_sum") > 0
    assert delta(aged, after, "voucher_relay_data_points_saved_total") == 2
    # The pause was waited out at the gate (the 429's deliveries wait in the queue instead).
    assert delta(aged, after, "voucher_relay_braze_gate_waits_total", reason="paused") >= 1
    assert delta(aged, after, "voucher_relay_braze_gate_wait_seconds_total", reason="paused") > 0
    assert value(after, "voucher_relay_deliveries", status="delivered", skip_reason="") == 2
    assert value(after, "voucher_relay_deliveries", status="skipped", skip_reason="unchanged") == 1
    assert value(after, "voucher_relay_queue_deliveries", status="pending") == 0
    assert value(after, "voucher_relay_queue_oldest_due_age_seconds") == 0

    await worker.gate.pause(until=datetime.now(UTC) + timedelta(minutes=5))
    paused = await scrape(client)
    assert value(paused, "voucher_relay_braze_gate_state", state="paused") == 1
    assert value(paused, "voucher_relay_braze_gate_state", state="open") == 0
    assert 200 < value(paused, "voucher_relay_braze_gate_pause_remaining_seconds") <= 300

    await worker.gate.block("HTTP 401: Invalid API key")
    blocked = await scrape(client)
    assert value(blocked, "voucher_relay_braze_gate_state", state="blocked") == 1
    assert value(blocked, "voucher_relay_braze_gate_state", state="paused") == 0
    assert value(blocked, "voucher_relay_braze_gate_blocked_seconds") >= 0
