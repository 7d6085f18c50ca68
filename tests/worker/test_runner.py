"""A worker process started as the CLI starts it (`run_worker`): its lanes follow what is set."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from app.config import Settings
from app.sandbox.voucherify.emulator import create_voucherify_emulator, voucherify_emulator_state
from app.sandbox.voucherify.state import EmulatorState
from app.worker.runner import run_worker
from tests.conftest import WRITER
from tests.delivery.conftest import Emulator, statuses
from tests.e2e.servers import serve_app_in_thread
from tests.factories import distribution_body, sample, signed
from tests.metrics.scrape import parse, value
from tests.ops.replay_data import create_distribution, settled_delivery, stored_event

APP_ID, APP_TOKEN = "vr-app", "vr-token"
CAMPAIGN = "Welcome 10% Off"


@pytest.fixture
def voucherify() -> Iterator[tuple[str, EmulatorState]]:
    app = create_voucherify_emulator(app_id=APP_ID, app_token=APP_TOKEN)
    state = voucherify_emulator_state(app)
    customer = sample("customer.segment.entered")["data"]["customer"]
    state.add_customer(id=customer["id"], source_id=customer["source_id"])
    state.add_campaign(name=CAMPAIGN, id="camp_welcome", codes=["PUB-1", "PUB-2"])
    with serve_app_in_thread(app) as url:
        yield url, state


async def _publish_mode_delivery(client: httpx.AsyncClient) -> None:
    """A webhook without a code for a distribution that publishes one: its delivery waits."""
    body = distribution_body(
        name="publishes", code_source={"type": "publish", "campaign": CAMPAIGN}
    )
    assert (await client.post("/api/v1/distributions", json=body, headers=WRITER)).is_success
    event = sample("customer.segment.entered")
    for key in ("voucher", "publication", "campaign"):
        event["data"].pop(key, None)
    raw, headers = signed(event)
    answer = await client.post("/webhooks/voucherify", content=raw, headers=headers)
    assert answer.status_code == 202, answer.text


async def test_a_worker_without_a_braze_key_publishes_replays_and_prunes_but_sends_nothing(
    settings: Settings, committing_client: httpx.AsyncClient, engine: AsyncEngine,
    database_url: URL, pool: asyncpg.Pool, emulator: Emulator,
    voucherify: tuple[str, EmulatorState], caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    await _publish_mode_delivery(committing_client)
    # A dead delivery with a queued bulk replay, and an old delivered one past retention.
    replayed = await create_distribution(committing_client)
    now = datetime.now(UTC)
    async with async_sessionmaker(engine)() as session, session.begin():
        dead = await settled_delivery(session, await stored_event(session, 1, received_at=now),
                                      replayed)  # fmt: skip
        old = await stored_event(session, 2, received_at=now - timedelta(days=40))
        await settled_delivery(
            session, old, replayed, status="delivered", created_at=now - timedelta(days=40)
        )
        dead_id, old_id = dead.id, old.id
    asked = await committing_client.post(
        "/api/v1/replays", headers=WRITER,
        json={"filter": {"distribution_id": str(replayed), "status": "dead"}},
    )  # fmt: skip
    assert asked.status_code == 202, asked.text

    assert settings.braze_api_key is None
    worker_settings = settings.model_copy(
        update={
            "braze_rest_url": emulator.url, "voucherify_api_url": voucherify[0],
            "voucherify_app_id": APP_ID, "voucherify_app_token": SecretStr(APP_TOKEN),
            "worker_poll_seconds": 0.05, "replay_poll_seconds": 0.05,
        }
    )  # fmt: skip
    stop = asyncio.Event()
    with caplog.at_level(logging.WARNING, logger="app.worker.runner"):
        worker = asyncio.create_task(run_worker(worker_settings, database_url, stop))
        try:
            for _ in range(400):  # polls the outcome; the bound only stops a hung test
                replay = (
                    await committing_client.get(f"/api/v1/replays/{asked.json()['id']}",
                                                headers=WRITER)
                ).json()  # fmt: skip
                published = await pool.fetchval(
                    "SELECT count(*) FROM deliveries WHERE attributes ? 'welcome_code'"
                    " AND distribution_id <> $1", replayed,
                )  # fmt: skip
                pruned = not await pool.fetchval(
                    "SELECT count(*) FROM webhook_events WHERE id = $1", old_id
                )
                if replay["status"] == "done" and published and pruned:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # several idle polls of every lane: nothing is sent
        finally:
            stop.set()
            await worker

    assert pruned, "retention did not run"
    assert (replay["status"], replay["queued"]) == ("done", 1)
    codes = await pool.fetch("SELECT attributes FROM deliveries WHERE distribution_id <> $1",
                             replayed)  # fmt: skip
    assert [c["attributes"]["welcome_code"] for c in codes] == ["PUB-1"]
    assert len(voucherify[1].publications_snapshot()) == 1
    # Nothing went to Braze: the published and the replayed deliveries wait in the queue.
    assert await statuses(pool) == {"pending": 2}
    assert await pool.fetchval("SELECT status FROM deliveries WHERE id = $1", dead_id) == "pending"
    assert emulator.state.requests_snapshot() == []

    # The API without a key: ready (Braze not configured is no failure), the queue in /metrics.
    ready = await committing_client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["braze"]["configured"] is False
    samples = parse((await committing_client.get("/metrics")).text)
    assert value(samples, "voucher_relay_queue_deliveries", status="pending") == 2
    assert not [name for name, _ in samples if name == "voucher_relay_braze_gate_state"]
