"""Poison webhooks: an odd value in a signed webhook is contained, never answered 500 (which
Voucherify retries for a day, then pauses the whole webhook)."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.delivery.models import Delivery, DeliveryAttempt
from app.distributions.envelope import Envelope
from app.webhooks import distribution_cache, matching
from app.webhooks.inbox import Inbox
from app.webhooks.models import WebhookEvent
from tests.conftest import READER
from tests.factories import sample
from tests.webhooks.test_intake import SEGMENT, add_distribution, client, post, session

__all__ = ["client", "session"]  # intake's fixtures: a committing client, a separate session


def entered(event_id: str, source_id: str) -> dict[str, Any]:
    body = sample(SEGMENT)
    body["event"]["id"] = event_id
    body["data"]["customer"]["source_id"] = source_id
    return body


@pytest.mark.parametrize("length", [300, 400, 987])
async def test_a_long_source_id_braze_accepts_is_stored_and_sent(
    client: httpx.AsyncClient, session: AsyncSession, length: int
) -> None:
    """Braze takes external ids up to 987 bytes: such a customer is delivered like any other."""
    await add_distribution(session)
    source_id = "u" * length
    response = await post(client, entered("ev_long", source_id))
    assert response.status_code == 202, response.text
    delivery = (await session.execute(select(Delivery))).scalar_one()
    assert (delivery.status, delivery.braze_user_key) == ("pending", f"external_id:{source_id}")
    event = await session.get(WebhookEvent, response.json()["event_id"])
    assert event is not None and event.customer_source_id == source_id


async def test_a_source_id_braze_refuses_is_stored_and_skipped_with_its_reason(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await add_distribution(session)
    body = entered("ev_too_long", "u" * 5000)
    response = await post(client, body)
    assert response.status_code == 202, response.text
    event = await session.get(WebhookEvent, response.json()["event_id"])
    assert event is not None and event.raw_body is not None and len(event.raw_body) > 5000
    delivery = (await session.execute(select(Delivery))).scalar_one()
    assert (delivery.status, delivery.skip_reason) == ("skipped", "no_identifier")
    assert "987 bytes" in (delivery.last_error or "")


async def test_incompressible_customer_ids_of_any_length_are_stored(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    """The customer lookups index these unbounded values: an index that cannot take a long,
    incompressible one (a btree past ~2.7 kB) would fail the webhook's insert on every retry."""
    await add_distribution(session)
    source_id, customer_id = secrets.token_hex(4000), secrets.token_hex(4000)
    body = entered("ev_random_ids", source_id)
    body["data"]["customer"]["id"] = customer_id
    response = await post(client, body)
    assert response.status_code == 202, response.text
    event = await session.get(WebhookEvent, response.json()["event_id"])
    assert event is not None
    assert (event.customer_source_id, event.customer_id) == (source_id, customer_id)


def _in_a_shared_batch(monkeypatch: pytest.MonkeyPatch, event_id: str) -> list[int]:
    """The sizes of the batches the inbox tried to store `event_id` in (first try first)."""
    sizes: list[int] = []
    write = Inbox._write

    async def spy(self: Inbox, batch: list[Any]) -> None:
        if any(p.envelope.event_id == event_id for p in batch):
            sizes.append(len(batch))
        await write(self, batch)

    monkeypatch.setattr(Inbox, "_write", spy)
    return sizes


async def test_one_poison_webhook_in_a_group_commit_fails_none_of_the_others(
    client: httpx.AsyncClient, session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_distribution(session)
    sizes = _in_a_shared_batch(monkeypatch, "ev_poison")
    bodies = [entered(f"ev_fine_{n}", f"usr-{n}") for n in range(12)]
    bodies[5] = entered("ev_poison", "p" * 400)
    bodies[9] = entered("ev_refused", "r" * 5000)

    # Posted together: the inbox writers store whatever waits in one statement.
    responses = await asyncio.gather(*(post(client, body) for body in bodies))

    assert [r.status_code for r in responses] == [202] * 12, [r.text for r in responses]
    assert sizes[0] > 1, "the poison event was not in a group commit with others"
    rows = (await session.execute(select(Delivery.status, Delivery.skip_reason))).all()
    assert sorted(tuple(r) for r in rows) == sorted(
        [("pending", None)] * 11 + [("skipped", "no_identifier")]
    )


async def test_a_delivery_postgres_cannot_store_keeps_its_event_and_fails_no_other(
    client: httpx.AsyncClient, session: AsyncSession, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """Whatever a value no check foresaw does to the insert, the webhook is stored (2xx, raw
    body intact, outcome failed, replayable) and the rest of its group commit is not touched."""
    await add_distribution(session)
    real_plan = matching.plan_deliveries

    def plan(*, envelope: Envelope, distributions: Any) -> list[dict[str, Any]]:
        rows = real_plan(envelope=envelope, distributions=distributions)
        if envelope.event_id == "ev_poison":
            rows[0]["skip_reason"] = "x" * 60  # over the column's 50 characters
        return rows

    monkeypatch.setattr(distribution_cache, "plan_deliveries", plan)
    sizes = _in_a_shared_batch(monkeypatch, "ev_poison")
    bodies = [entered(f"ev_fine_{n}", f"usr-{n}") for n in range(12)]
    bodies[7] = entered("ev_poison", "usr-poison")

    responses = await asyncio.gather(*(post(client, body) for body in bodies))

    assert [r.status_code for r in responses] == [202] * 12, [r.text for r in responses]
    assert sizes[0] > 1, "the poison event was not in a group commit with others"
    outcomes = [r.json()["outcome"] for r in responses]
    assert outcomes == ["matched"] * 7 + ["failed"] + ["matched"] * 4
    event = await session.get(WebhookEvent, responses[7].json()["event_id"])
    assert event is not None and event.outcome == "failed" and event.deliveries_created == 0
    assert event.raw_body is not None and b"usr-poison" in event.raw_body
    assert len((await session.execute(select(Delivery))).scalars().all()) == 11
    assert "storing the event alone" in caplog.text


async def test_a_mapping_error_for_one_event_stores_it_as_failed(
    client: httpx.AsyncClient, session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_distribution(session)
    real_plan = matching.plan_deliveries

    def plan(*, envelope: Envelope, distributions: Any) -> list[dict[str, Any]]:
        if envelope.event_id == "ev_odd":
            raise KeyError("a body shape the mapping did not foresee")
        return real_plan(envelope=envelope, distributions=distributions)

    monkeypatch.setattr(distribution_cache, "plan_deliveries", plan)
    odd, fine = entered("ev_odd", "usr-odd"), entered("ev_fine", "usr-fine")
    responses = await asyncio.gather(post(client, odd), post(client, fine))
    assert [(r.status_code, r.json()["outcome"]) for r in responses] == [
        (202, "failed"), (202, "matched")
    ]  # fmt: skip
    listed = await client.get("/api/v1/events?outcome=failed", headers=READER)
    assert [e["voucherify_event_id"] for e in listed.json()["items"]] == ["ev_odd"]


@pytest.mark.parametrize(
    ("ahead", "replaced"), [(timedelta(hours=23), False), (timedelta(days=2), True)]
)
async def test_an_event_time_over_a_day_ahead_is_replaced_by_the_time_received(
    client: httpx.AsyncClient, session: AsyncSession, ahead: timedelta, replaced: bool
) -> None:
    """Taken as it is, a time far ahead makes every later event of that user `stale`."""
    await add_distribution(session)
    body = entered("ev_future", "usr-future")
    claimed = datetime.now(UTC) + ahead
    body["event"]["created_at"] = body["created_at"] = claimed.isoformat()
    before = datetime.now(UTC)
    response = await post(client, body)
    assert response.status_code == 202, response.text

    event = await session.get(WebhookEvent, response.json()["event_id"])
    delivery = (await session.execute(select(Delivery))).scalar_one()
    assert event is not None and delivery.event_time == event.event_created_at
    notes = (await session.execute(select(DeliveryAttempt))).scalars().all()
    if not replaced:
        assert event.event_created_at == claimed and notes == []
        return
    assert event.event_created_at is not None
    assert before <= event.event_created_at <= datetime.now(UTC)
    assert [(n.delivery_id, n.outcome) for n in notes] == [(delivery.id, "event_time_replaced")]
    assert claimed.isoformat() in (notes[0].message or "")
    assert event.raw_body is not None and claimed.isoformat().encode() in event.raw_body


async def test_a_year_9999_event_time_is_replaced(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await add_distribution(session)
    body = entered("ev_9999", "usr-9999")
    body["event"]["created_at"] = body["created_at"] = "9999-12-31T23:59:59.999Z"
    response = await post(client, body)
    assert response.status_code == 202, response.text
    delivery = (await session.execute(select(Delivery))).scalar_one()
    assert delivery.event_time is not None and delivery.event_time.year < 9999
