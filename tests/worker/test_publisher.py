"""Deliveries that wait for Voucherify: codes published from a campaign, customers looked up."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from app.sandbox.voucherify.emulator import create_voucherify_emulator, voucherify_emulator_state
from app.sandbox.voucherify.state import EmulatorState
from app.voucherify.client import VoucherifyClient
from app.worker.publisher import Publisher, publication_source_id
from tests.conftest import WRITER
from tests.delivery.conftest import Emulator, WorkerFactory, drain
from tests.e2e.servers import serve_app_in_thread
from tests.factories import distribution_body, sample, signed
from tests.voucherify.fakes import FakeClock

SETTLED = "voucher_relay_deliveries_settled_total"

APP_ID, APP_TOKEN = "vr-app", "vr-token"
CUSTOMER = {"id": "cust_8fN2kQ4rT6vX1zB3mP5sL7wY", "source_id": "braze-usr-10042"}


@pytest.fixture
def voucherify() -> Iterator[tuple[str, EmulatorState]]:
    app = create_voucherify_emulator(app_id=APP_ID, app_token=APP_TOKEN)
    state = voucherify_emulator_state(app)
    state.add_customer(**CUSTOMER, email="mia.schneider@example.com")
    state.add_campaign(
        name="Welcome 10% Off", id="camp_welcome", codes=["PUB-1", "PUB-2"],
        expiration_date=datetime(2026, 12, 31, 23, 0, tzinfo=UTC),
    )  # fmt: skip
    state.add_campaign(name="Sold out", id="camp_empty", codes=[])
    with serve_app_in_thread(app) as url:
        yield url, state


@pytest.fixture
async def publisher(
    pool: asyncpg.Pool, voucherify: tuple[str, EmulatorState]
) -> AsyncIterator[Publisher]:
    client = VoucherifyClient(base_url=voucherify[0], app_id=APP_ID, app_token=SecretStr(APP_TOKEN))
    yield Publisher(
        pool, voucherify=client, worker_id="publisher-1", lease=timedelta(seconds=60),
        schedule=(timedelta(milliseconds=50),),
    )  # fmt: skip
    await client.aclose()


async def post(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    raw, headers = signed(body)
    assert (
        await client.post("/webhooks/voucherify", content=raw, headers=headers)
    ).status_code == 202


async def publish_distribution(client: httpx.AsyncClient, campaign: str, **overrides: Any) -> None:
    body = distribution_body(code_source={"type": "publish", "campaign": campaign}, **overrides)
    assert (
        await client.post("/api/v1/distributions", json=body, headers=WRITER)
    ).status_code == 201


def entered_without_code() -> dict[str, Any]:
    event = sample("customer.segment.entered")
    for key in ("voucher", "publication", "campaign"):
        event["data"].pop(key, None)
    return event


async def test_a_code_is_published_and_reaches_braze(
    committing_client: httpx.AsyncClient, pool: asyncpg.Pool, publisher: Publisher,
    voucherify: tuple[str, EmulatorState], emulator: Emulator, make_worker: WorkerFactory,
) -> None:  # fmt: skip
    await publish_distribution(committing_client, "Welcome 10% Off")
    await post(committing_client, entered_without_code())
    assert await pool.fetchval("SELECT attributes FROM deliveries") is None

    assert await publisher.cycle() == 1
    delivery = await pool.fetchrow("SELECT status, attributes FROM deliveries")
    assert delivery["status"] == "pending"
    assert delivery["attributes"]["welcome_code"] == "PUB-1"
    assert delivery["attributes"]["welcome_code_expires_at"] == "2026-12-31T23:00:00.000Z"

    await drain(await make_worker())
    profile = emulator.state.profiles_snapshot()["external_id:braze-usr-10042"]
    assert profile["welcome_code"] == "PUB-1"
    assert [p["source_id"] for p in voucherify[1].publications_snapshot()] == [
        publication_source_id(
            await pool.fetchval("SELECT distribution_id FROM deliveries"),
            entered_without_code()["event"]["id"], CUSTOMER,
        )
    ]  # fmt: skip


async def test_a_loyalty_event_gets_a_published_code_not_the_card_it_carries(
    committing_client: httpx.AsyncClient, pool: asyncpg.Pool, publisher: Publisher,
    voucherify: tuple[str, EmulatorState],
) -> None:  # fmt: skip
    event = sample("customer.voucher.loyalty_card.points_added")
    await publish_distribution(
        committing_client, "Welcome 10% Off", triggers=[event["event"]["type"]], filters={}
    )
    await post(committing_client, event)
    assert await pool.fetchval("SELECT attributes FROM deliveries") is None  # waits for a code

    assert await publisher.cycle() == 1
    attributes = await pool.fetchval("SELECT attributes FROM deliveries")
    assert attributes["welcome_code"] == "PUB-1", "not the loyalty card LOY-4HX9QK2M"
    assert len(voucherify[1].publications_snapshot()) == 1


async def test_no_code_is_published_for_a_paused_distribution(
    committing_client: httpx.AsyncClient, pool: asyncpg.Pool, publisher: Publisher,
    voucherify: tuple[str, EmulatorState],
) -> None:  # fmt: skip
    await publish_distribution(committing_client, "Welcome 10% Off")
    await post(committing_client, entered_without_code())
    distribution_id = await pool.fetchval("SELECT distribution_id FROM deliveries")
    url = f"/api/v1/distributions/{distribution_id}"
    assert (await committing_client.post(f"{url}/pause", headers=WRITER)).status_code == 200
    await pool.execute("UPDATE deliveries SET next_attempt_at = now()")  # even if due
    assert await publisher.cycle() == 0
    assert voucherify[1].publications_snapshot() == []
    assert (await committing_client.post(f"{url}/resume", headers=WRITER)).status_code == 200
    assert await publisher.cycle() == 1


async def test_publishing_again_never_hands_out_a_second_code(
    committing_client: httpx.AsyncClient, pool: asyncpg.Pool, publisher: Publisher,
    voucherify: tuple[str, EmulatorState],
) -> None:  # fmt: skip
    await publish_distribution(committing_client, "Welcome 10% Off")
    await post(committing_client, entered_without_code())
    await publisher.cycle()
    # As if the worker had died after publishing, before the result was kept.
    await pool.execute("UPDATE deliveries SET attributes = NULL, status = 'pending'")
    await publisher.cycle()
    assert (await pool.fetchval("SELECT attributes FROM deliveries"))["welcome_code"] == "PUB-1"
    assert len(voucherify[1].publications_snapshot()) == 1


async def test_a_long_429_wait_retries_the_delivery_after_it_without_using_its_schedule(
    committing_client: httpx.AsyncClient, pool: asyncpg.Pool,
    voucherify: tuple[str, EmulatorState],
) -> None:  # fmt: skip
    await publish_distribution(committing_client, "Welcome 10% Off")
    await post(committing_client, entered_without_code())
    await post(committing_client, {**entered_without_code(), "id": "whs_2",
               "event": {**entered_without_code()["event"], "id": "evt_2"}})  # fmt: skip
    # Voucherify's quota is spent: come back in an hour (longer than the client sleeps).
    voucherify[1].faults.fail_next(1, status=429, retry_after=3600)
    clock = FakeClock()
    client = VoucherifyClient(
        base_url=voucherify[0], app_id=APP_ID, app_token=SecretStr(APP_TOKEN), clock=clock,
        sleep=clock.sleep,
    )  # fmt: skip
    # A schedule of one step: a counted try would leave the delivery dead at the next failure.
    publisher = Publisher(
        pool, voucherify=client, worker_id="publisher-1", lease=timedelta(seconds=60),
        schedule=(timedelta(milliseconds=50),),
    )  # fmt: skip
    try:
        assert await publisher.cycle() == 2
        rows = await pool.fetch(
            "SELECT status, attempts, next_attempt_at, last_error FROM deliveries ORDER BY id"
        )
        for row in rows:
            assert (row["status"], row["attempts"]) == ("pending", 0), dict(row)
            waits = (row["next_attempt_at"] - datetime.now(UTC)).total_seconds()
            assert 3590 < waits <= 3600, dict(row)
            assert row["last_error"].startswith("Voucherify rate limited"), dict(row)
        assert "asking to wait 3600 s" in rows[0]["last_error"]
        assert "not sent" in rows[1]["last_error"]  # the second did not spend a request
        assert len(voucherify[1].requests_snapshot()) == 1
        outcomes = await pool.fetch("SELECT outcome FROM delivery_attempts")
        assert [r["outcome"] for r in outcomes] == ["rate_limited", "rate_limited"]

        clock.now += 3600  # the hour is over
        await pool.execute("UPDATE deliveries SET next_attempt_at = now()")
        assert await publisher.cycle() == 2
        codes = await pool.fetch("SELECT attributes->>'welcome_code' AS code FROM deliveries")
        assert sorted(r["code"] for r in codes) == ["PUB-1", "PUB-2"]
        assert {r["attempts"] for r in await pool.fetch("SELECT attempts FROM deliveries")} == {0}
    finally:
        await client.aclose()


async def test_a_campaign_out_of_codes_fails_visibly(
    committing_client: httpx.AsyncClient, pool: asyncpg.Pool, publisher: Publisher,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    await publish_distribution(committing_client, "Sold out")
    await post(committing_client, entered_without_code())
    counted = REGISTRY.get_sample_value(SETTLED, {"outcome": "failed", "skip_reason": ""}) or 0
    await publisher.cycle()
    failed = await pool.fetchrow("SELECT id, distribution_id, status, last_error FROM deliveries")
    assert failed["status"] == "failed"
    assert "no_voucher_suitable_for_publication" in failed["last_error"]
    # Counted and logged (ids only, not the customer) once the outcome is recorded.
    now = REGISTRY.get_sample_value(SETTLED, {"outcome": "failed", "skip_reason": ""})
    assert now == counted + 1
    [line] = [r for r in caplog.records if r.name == "app.delivery.reporting"]
    assert line.levelno == logging.WARNING
    assert line.getMessage().startswith(
        f"delivery {failed['id']} of distribution {failed['distribution_id']} failed"
    )


async def test_the_holder_of_a_gift_card_is_looked_up(
    committing_client: httpx.AsyncClient, pool: asyncpg.Pool, publisher: Publisher
) -> None:
    body = distribution_body(
        triggers=["voucher.gift.balance_added"], filters={}, consent=None,
        mapping=[{"source": "voucher.code", "attribute": "gift_card"},
                 {"source": "voucher.gift.balance", "attribute": "gift_balance",
                  "format": "minor_units_to_decimal"}],
    )  # fmt: skip
    assert (
        await committing_client.post("/api/v1/distributions", json=body, headers=WRITER)
    ).status_code == 201
    await post(committing_client, sample("voucher.gift.balance_added"))
    await publisher.cycle()
    delivery = await pool.fetchrow("SELECT status, braze_user_key, attributes FROM deliveries")
    assert delivery["status"] == "pending"
    assert delivery["braze_user_key"] == "external_id:braze-usr-10042"
    assert delivery["attributes"] == {
        "external_id": "braze-usr-10042", "gift_card": "GIFT-8KD2P9QX", "gift_balance": 62.0,
    }  # fmt: skip


async def test_a_holder_id_with_a_nul_character_fails_visibly_not_forever(
    committing_client: httpx.AsyncClient, pool: asyncpg.Pool, publisher: Publisher
) -> None:
    """Voucherify's answer about such an id may quote it; Postgres text takes no NUL: the
    outcome is still recorded (a failure that could not be stored would retry forever)."""
    body = distribution_body(
        triggers=["voucher.gift.balance_added"], filters={}, consent=None,
        mapping=[{"source": "voucher.code", "attribute": "gift_card"}],
    )  # fmt: skip
    assert (
        await committing_client.post("/api/v1/distributions", json=body, headers=WRITER)
    ).status_code == 201
    event = sample("voucher.gift.balance_added")
    event["data"]["voucher"]["holder_id"] = "cust\x00x"
    await post(committing_client, event)
    await publisher.cycle()
    delivery = await pool.fetchrow("SELECT status, last_error FROM deliveries")
    assert delivery["status"] == "failed", dict(delivery)
    assert "Cannot find customer with id cust\ufffdx" in delivery["last_error"]
    assert "\x00" not in delivery["last_error"]
