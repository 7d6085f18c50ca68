"""The console's pages against stored data: what an operator reads, and what each form does."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.braze.models import BrazeGate
from app.delivery.models import DeliveryAttempt
from app.distributions.models import Distribution
from app.ops.models import Replay
from app.runs.models import Run
from tests.conftest import READ_TOKEN, READER, WRITE_TOKEN, WRITER
from tests.console.signin import sign_in
from tests.factories import sample
from tests.ops.replay_data import create_distribution, settled_delivery, stored_event

NOW = datetime.now(UTC)


async def test_every_page_renders_for_a_read_token(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    distribution_id = await create_distribution(client)
    event = await stored_event(session, 1, received_at=NOW)
    delivery = await settled_delivery(session, event, distribution_id)
    await sign_in(client, READ_TOKEN)
    for path in (
        "/console", "/console/customer?q=user-1", "/console/distributions",
        f"/console/distributions/{distribution_id}", "/console/deliveries",
        "/console/deliveries?status=dead&trigger=webhook", f"/console/deliveries/{delivery.id}",
        "/console/events", f"/console/events/{event.id}", "/console/replays", "/console/runs",
    ):  # fmt: skip
        page = await client.get(path)
        assert page.status_code == 200, (path, page.text[:500])
        assert "<main" in page.text and "Replay</button>" not in page.text, path


async def test_the_customer_page_shows_events_deliveries_values_and_skips(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    distribution_id = await create_distribution(client)
    event = await stored_event(session, 7, received_at=NOW, user="mia@example.com")
    sent = await settled_delivery(
        session, event, distribution_id, status="delivered", delivered_at=NOW,
        attributes={"external_id": "mia@example.com", "welcome_code": "WELCOME-MIA"},
    )  # fmt: skip
    session.add(DeliveryAttempt(delivery_id=sent.id, outcome="delivered",
                                omitted={"unchanged": ["welcome_code_expires_at"]}))  # fmt: skip
    await settled_delivery(session, event, distribution_id, status="skipped",
                           skip_reason="no_consent", attributes=None)  # fmt: skip
    await sign_in(client, WRITE_TOKEN)
    page = (await client.get("/console/customer", params={"q": "mia@example.com"})).text
    assert "WELCOME-MIA" in page and "no_consent" in page
    assert "left out (unchanged): welcome_code_expires_at" in page
    assert f'hx-post="/console/deliveries/{sent.id}/replay"' in page
    assert event.event_type in page
    nobody = await client.get("/console/customer", params={"q": "nobody"})
    assert "Nothing found" in nobody.text


async def test_a_replay_button_queues_the_delivery_again(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    distribution_id = await create_distribution(client)
    event = await stored_event(session, 2, received_at=NOW)
    failed = await settled_delivery(session, event, distribution_id, status="failed")
    csrf = await sign_in(client, WRITE_TOKEN)
    response = await client.post(
        f"/console/deliveries/{failed.id}/replay",
        headers={"X-CSRF-Token": csrf, "HX-Request": "true"},
    )
    assert response.status_code == 200 and "Queued again" in response.text
    await session.refresh(failed)
    assert failed.status == "pending" and failed.replay_id is not None
    replay = await session.get(Replay, failed.replay_id)
    assert replay is not None and replay.requested_by == "ops-team"


async def test_the_overview_counts_failures_by_reason_and_data_points_saved(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    distribution_id = await create_distribution(client)
    event = await stored_event(session, 3, received_at=NOW)
    delivery = await settled_delivery(session, event, distribution_id)
    session.add_all([
        DeliveryAttempt(delivery_id=delivery.id, outcome="delivered",
                        omitted={"unchanged": ["a", "b"], "stale": ["c"]}),
        DeliveryAttempt(delivery_id=delivery.id, outcome="skipped", omitted={"unchanged": ["d"]}),
        DeliveryAttempt(delivery_id=delivery.id, outcome="dead", message="Braze answered 400"),
        DeliveryAttempt(delivery_id=delivery.id, outcome="dead", message="Braze answered 400"),
        DeliveryAttempt(delivery_id=delivery.id, outcome="replay_queued", message="asked by x"),
        BrazeGate(workspace="w", tokens=1, paused_until=datetime.now(UTC) + timedelta(seconds=30)),
    ])  # fmt: skip
    await session.flush()
    await sign_in(client, READ_TOKEN)
    page = (await client.get("/console")).text
    assert '<div class="big" id="data-points-saved">3</div>' in page
    assert 'Braze answered 400</td><td class="num">2</td>' in page
    assert "replay_queued" not in page
    assert "paused by Braze&#39;s rate limit" in page
    assert '<div class="big" id="waiting">0</div>' in page


async def test_a_new_distribution_shows_errors_next_to_fields_then_saves(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    csrf = await sign_in(client, WRITE_TOKEN)
    form = {
        "csrf": csrf, "name": "welcome", "triggers": "customer.segment.entered",
        "identity_type": "external_id", "code_source": "event", "action": "set",
        "status": "active", "source": ["voucher.code", "voucher.nope"],
        "attribute": ["welcome_code", "x"], "format": ["raw", "raw"],
    }  # fmt: skip
    refused = await client.post("/console/distributions/new", data=form)
    assert refused.status_code == 422
    assert 'id="error-source_1-1"' in refused.text and "voucher.nope" in refused.text
    form.update(source=["voucher.code"], attribute=["welcome_code"], format=["raw"])
    created = await client.post("/console/distributions/new", data=form)
    assert created.status_code == 303, created.text
    stored = (await session.scalars(select(Distribution))).one()
    assert stored.name == "welcome" and stored.mapping[0]["attribute"] == "welcome_code"
    page = await client.get(created.headers["location"])
    assert "{{custom_attribute.${welcome_code}}}" in page.text  # the Liquid snippet


async def test_the_preview_maps_a_pasted_event_without_storing_it(
    client: httpx.AsyncClient,
) -> None:
    await sign_in(client, WRITE_TOKEN)
    body = sample("customer.publication.succeeded")
    form = {
        "name": "preview", "triggers": "customer.publication.succeeded",
        "identity_type": "external_id", "code_source": "event", "source": "voucher.code",
        "attribute": "welcome_code", "format": "raw", "sample": json.dumps(body),
    }  # fmt: skip
    answer = await client.post("/console/distributions/preview", data=form)
    assert 'id="preview-outcome">send<' in answer.text, answer.text
    assert body["data"]["voucher"]["code"] in answer.text
    not_json = await client.post("/console/distributions/preview", data={**form, "sample": "{"})
    assert "not JSON" in not_json.text


async def test_a_bulk_replay_goes_from_plan_to_confirmation(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    distribution_id = await create_distribution(client)
    for n in range(3):
        event = await stored_event(session, 10 + n, received_at=NOW)
        await settled_delivery(session, event, distribution_id, status="failed")
    csrf = await sign_in(client, WRITE_TOKEN)
    form = {"csrf": csrf, "distribution_id": str(distribution_id), "status": "failed"}
    plan = await client.post("/console/replays/plan", data=form)
    assert 'id="plan-count">3<' in plan.text
    started = await client.post("/console/replays", data=form)
    assert started.status_code == 303
    replay_id = uuid.UUID(started.headers["location"].rsplit("/", 1)[1])
    progress = await client.get(f"/console/replays/{replay_id}/progress")
    assert 'hx-trigger="every 1s"' in progress.text and "Cancel the replay" in progress.text
    canceled = await client.post(f"/console/replays/{replay_id}/cancel", data={"csrf": csrf})
    assert canceled.status_code == 303
    assert "canceled" in (await client.get(f"/console/replays/{replay_id}")).text


async def test_a_run_for_listed_customers_starts_with_its_delay_and_is_canceled(
    client: httpx.AsyncClient,
) -> None:
    distribution_id = await create_distribution(
        client,
        triggers=["manual_distribution_schedule"],
        code_source={"type": "publish", "campaign": "welcome"},
    )
    csrf = await sign_in(client, WRITE_TOKEN)
    form = {
        "csrf": csrf, "distribution_id": str(distribution_id), "audience": "source_ids",
        "members": "mia\nnoah", "delay_seconds": "60",
    }  # fmt: skip
    refused = await client.post("/console/runs", data=form)
    assert refused.status_code == 422 and "send_now" in refused.text
    started = await client.post("/console/runs", data={**form, "send_now": "on"})
    assert started.status_code == 303, started.text
    page = (await client.get(started.headers["location"])).text
    assert "scheduled" in page and "Cancel the run" in page and "0 of 2" in page
    cancel = started.headers["location"] + "/cancel"
    assert (await client.post(cancel, data={"csrf": csrf})).status_code == 303
    assert "canceled" in (await client.get(started.headers["location"])).text


async def test_a_missing_delivery_is_a_page_in_the_console_and_json_in_the_api(
    client: httpx.AsyncClient,
) -> None:
    await sign_in(client, READ_TOKEN)
    page = await client.get("/console/deliveries/999999")
    assert page.status_code == 404 and "<h1>no delivery 999999</h1>" in page.text
    api = await client.get("/api/v1/deliveries/999999", headers=READER)
    assert api.status_code == 404 and api.json()["error"]["code"] == "not_found"


async def test_a_run_that_gave_up_on_voucherify_offers_resume_and_resumes(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    distribution_id = await create_distribution(
        client, triggers=["manual_distribution_schedule"],
        code_source={"type": "publish", "campaign": "welcome"},
    )  # fmt: skip
    created = await client.post(
        f"/api/v1/distributions/{distribution_id}/runs", headers=WRITER,
        json={"audience": {"segment_id": "seg_1"}, "delay_seconds": 0, "send_now": True},
    )  # fmt: skip
    run = await session.get(Run, created.json()["id"])
    assert run is not None
    run.status, run.failures, run.error = "failed", 5, "Voucherify unavailable 5 times"
    await session.flush()
    csrf = await sign_in(client, WRITE_TOKEN)
    page = await client.get(f"/console/runs/{run.id}")
    assert "Resume from its checkpoint" in page.text and "Voucherify unavailable" in page.text
    resumed = await client.post(f"/console/runs/{run.id}/resume", data={"csrf": csrf})
    assert resumed.status_code == 303
    await session.refresh(run)
    assert run.status in ("scheduled", "running") and run.resumed_by == "ops-team"
