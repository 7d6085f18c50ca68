from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.config import Settings
from app.delivery.models import Delivery
from app.distributions.models import Distribution
from app.distributions.schemas import DistributionConfig
from app.distributions.service import create
from app.main import create_app
from app.observability import RedactSecrets
from app.webhooks import group_commit
from app.webhooks.models import WebhookEvent
from tests.conftest import truncate_all
from tests.distributions.test_samples import EXPECTED
from tests.factories import distribution_body, sample, signed

URL = "/webhooks/voucherify"
SEGMENT = "customer.segment.entered"


# Intake writes through its own connection pool and commits: these tests commit too (their
# setup through `db`) and `committing_client` empties the tables afterwards.
@pytest.fixture
def client(committing_client: httpx.AsyncClient) -> httpx.AsyncClient:
    return committing_client


@pytest.fixture
async def session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    async with AsyncSession(engine, expire_on_commit=False) as session:
        yield session


async def post(
    client: httpx.AsyncClient, body: dict[str, Any] | bytes, **headers: str
) -> httpx.Response:
    raw, signed_headers = signed(body)
    return await client.post(URL, content=raw, headers={**signed_headers, **headers})


async def add_distribution(session: AsyncSession, **overrides: Any) -> DistributionConfig:
    config = DistributionConfig.model_validate(distribution_body(**overrides))
    await create(session=session, config=config)
    await session.commit()
    return config


async def count(session: AsyncSession, model: type[Any]) -> int:
    return (await session.execute(select(func.count()).select_from(model))).scalar_one()


@pytest.mark.parametrize("event_type", sorted(EXPECTED))
async def test_every_trigger_is_stored_with_its_delivery(
    client: httpx.AsyncClient, session: AsyncSession, event_type: str
) -> None:
    await add_distribution(
        session, name=event_type, triggers=[event_type], filters={}, consent=None
    )
    response = await post(client, sample(event_type))
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["outcome"] == "matched" and body["deliveries"] == 1 and not body["duplicate"]

    event = await session.get(WebhookEvent, body["event_id"])
    assert event is not None and event.event_type == event_type and event.outcome == "matched"
    delivery = (await session.execute(select(Delivery))).scalar_one()
    assert delivery.event_id == event.id and delivery.distribution_version == 1
    expected = EXPECTED[event_type]
    if expected.startswith("customer:"):  # waits for the customer lookup: no attributes yet
        assert (delivery.status, delivery.attributes) == ("pending", None)
    elif expected.startswith("skip:"):
        assert (delivery.status, delivery.skip_reason) == (
            "skipped",
            expected.removeprefix("skip:"),
        )
    else:
        assert delivery.status == "pending"
        assert delivery.attributes is not None and delivery.attributes["welcome_code"]
        assert delivery.braze_user_key == "external_id:braze-usr-10042"


async def test_the_raw_body_is_stored_exactly_as_received(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    pretty = json.dumps(sample("customer.order.paid"), indent=4).encode()
    response = await post(client, pretty)
    event = await session.get(WebhookEvent, response.json()["event_id"])
    assert event is not None and event.raw_body == pretty
    assert (event.voucherify_event_id, event.event_type) == (
        json.loads(pretty)["event"]["id"],
        "customer.order.paid",
    )
    assert event.signature_result == "valid_raw"


async def test_resolved_attributes_are_stored_on_the_delivery(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await add_distribution(session)
    await post(client, sample("customer.segment.entered"))
    delivery = (await session.execute(select(Delivery))).scalar_one()
    assert delivery.attributes == {
        "external_id": "braze-usr-10042",
        "welcome_code": "WELCOME-7QX2KD",
        "welcome_code_expires_at": "2026-04-09T21:59:59.000Z",
    }
    assert delivery.trigger == "webhook"
    assert delivery.event_time is not None


async def test_nul_characters_are_stored_without_a_500(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    # Found by the property tests: Postgres text and jsonb refuse NUL, which JSON allows.
    await add_distribution(session)
    body = sample("customer.segment.entered")
    body["data"]["voucher"]["code"] = "WELCOME\x00"
    body["data"]["customer"]["id"] = "cust\x00"
    assert (await post(client, body)).status_code == 202
    delivery = (await session.execute(select(Delivery))).scalar_one()
    # Not sent as "WELCOME": that would be another code than the event's.
    assert (delivery.status, delivery.skip_reason) == ("skipped", "invalid_value")
    assert delivery.attributes is None and "NUL" in (delivery.last_error or "")
    body["event"]["id"] = "evt\x00"
    refused = await post(client, body)
    assert refused.status_code == 400 and "NUL" in refused.json()["error"]["message"]


@pytest.mark.parametrize(
    ("source_id", "status", "user_key"),
    [
        # A real NUL: stripping it would address another Braze user.
        ("usr\x00x", "skipped", None),
        # The six characters backslash-u-0-0-0-0 are ordinary text, kept exactly.
        ("usr\\u0000b", "pending", "external_id:usr\\u0000b"),
    ],
)
async def test_nul_or_its_escape_in_the_identifier_never_addresses_another_user(
    client: httpx.AsyncClient, session: AsyncSession, source_id: str, status: str,
    user_key: str | None,
) -> None:  # fmt: skip
    await add_distribution(session)
    body = sample("customer.segment.entered")
    body["data"]["customer"]["source_id"] = source_id
    response = await post(client, body)
    assert response.status_code == 202, response.text
    delivery = (await session.execute(select(Delivery))).scalar_one()
    assert (delivery.status, delivery.braze_user_key) == (status, user_key)
    if user_key is not None:
        assert delivery.attributes is not None
        assert delivery.attributes["external_id"] == source_id


async def test_one_delivery_per_matching_distribution(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await add_distribution(session, name="a")
    await add_distribution(
        session, name="b", mapping=[{"source": "voucher.code", "attribute": "b_code"}]
    )
    await add_distribution(session, name="other-segment", filters={"segment_id": "seg_other"})
    await add_distribution(session, name="paused", status="paused")
    await add_distribution(session, name="orders", triggers=["customer.order.paid"], filters={})
    response = await post(client, sample("customer.segment.entered"))
    assert response.json()["deliveries"] == 2
    assert await count(session, Delivery) == 2


async def test_customer_without_consent_gets_a_skipped_delivery(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await add_distribution(session)
    event = sample("customer.segment.entered")
    event["data"]["customer"]["metadata"]["braze_opt_in"] = False
    await post(client, event)
    delivery = (await session.execute(select(Delivery))).scalar_one()
    assert (delivery.status, delivery.skip_reason) == ("skipped", "no_consent")


async def test_event_no_distribution_listens_to_is_stored_as_unmatched(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    response = await post(client, sample("customer.order.paid"))
    assert response.status_code == 202
    assert response.json()["outcome"] == "unmatched" and response.json()["deliveries"] == 0
    assert await count(session, WebhookEvent) == 1


async def test_unknown_event_type_is_stored_as_ignored(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    body = sample("customer.segment.entered")
    body["event"]["type"] = "customer.loyalty.tier.joined"
    response = await post(client, body)
    assert response.status_code == 202
    assert response.json()["outcome"] == "ignored"
    event = await session.get(WebhookEvent, response.json()["event_id"])
    assert event is not None and event.outcome == "ignored"


async def test_duplicate_webhook_creates_no_second_delivery(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await add_distribution(session)
    body = sample("customer.segment.entered")
    first = await post(client, body)
    body["id"] = "whs_a_retry_with_another_send_out_id"
    second = await post(client, body)
    assert first.status_code == 202 and second.status_code == 200
    assert second.json() == {
        "event_id": first.json()["event_id"],
        "duplicate": True,
        "outcome": "matched",
        "deliveries": 0,
    }
    assert await count(session, WebhookEvent) == 1
    assert await count(session, Delivery) == 1


async def test_a_webhook_sent_again_is_answered_without_the_database(
    client: httpx.AsyncClient,
    session: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await add_distribution(session)
    calls: list[str] = []
    store, existing = group_commit.store, group_commit.existing

    async def counted_store(*args: Any) -> Any:
        calls.append("store")
        return await store(*args)

    async def counted_existing(*args: Any) -> Any:
        calls.append("existing")
        return await existing(*args)

    monkeypatch.setattr(group_commit, "store", counted_store)
    monkeypatch.setattr(group_commit, "existing", counted_existing)
    body = sample("customer.segment.entered")
    first = await post(client, body)
    assert first.status_code == 202
    writes = len(calls)
    again = [await post(client, body) for _ in range(3)]
    assert len(calls) == writes  # no statement for any of them
    assert [r.status_code for r in again] == [200, 200, 200]
    assert {tuple(sorted(r.json().items())) for r in again} == {
        (("deliveries", 0), ("duplicate", True), ("event_id", first.json()["event_id"]),
         ("outcome", "matched")),
    }  # fmt: skip
    assert await count(session, WebhookEvent) == 1


async def test_same_event_from_another_source_is_a_new_event(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    body = sample("customer.segment.entered")
    await post(client, body)
    body["source"]["id"] = "distr_another_distribution"
    assert (await post(client, body)).status_code == 202
    assert await count(session, WebhookEvent) == 2


async def test_bad_signature_is_401_and_nothing_is_stored(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    raw, headers = signed(sample("customer.order.paid"), secret="not-the-secret")
    response = await client.post(URL, content=raw, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == {
        "code": "bad_signature",
        "message": "invalid x-voucherify-signature header",
    }
    missing = await client.post(URL, content=raw, headers={"content-type": "application/json"})
    assert missing.status_code == 401 and "missing" in missing.json()["error"]["message"]
    assert await count(session, WebhookEvent) == 0


async def test_signature_over_the_compact_body_is_accepted(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    body = sample("customer.order.paid")
    _, headers = signed(body)  # signed compact, posted pretty-printed
    response = await client.post(URL, content=json.dumps(body, indent=2).encode(), headers=headers)
    assert response.status_code == 202
    event = await session.get(WebhookEvent, response.json()["event_id"])
    assert event is not None and event.signature_result == "valid_compact"


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        (b"{not json", "not valid JSON"),
        (
            json.dumps(
                {"id": "e1", "object": "event", "webhook_id": "wh", "type": "redemption.succeeded"}
            ).encode(),
            "legacy v2018-08-01",
        ),
        (json.dumps({"hello": "world"}).encode(), "not a Voucherify v2024-01-01 envelope"),
    ],
)
async def test_bodies_that_are_not_envelopes_get_400(
    client: httpx.AsyncClient, session: AsyncSession, body: bytes, complaint: str
) -> None:
    response = await post(client, body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_webhook"
    assert complaint in response.json()["error"]["message"]
    assert await count(session, WebhookEvent) == 0


async def test_oversized_body_gets_413(client: httpx.AsyncClient) -> None:
    body = sample("customer.order.paid")
    body["data"]["padding"] = "x" * (1024 * 1024)
    response = await post(client, body)
    assert response.status_code == 413
    assert "limit" in response.json()["error"]["message"]


async def test_oversized_body_without_content_length_gets_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> Any:
        for _ in range(20):
            yield b"x" * 65536

    response = await client.post(URL, content=chunks(), headers={"x-voucherify-signature": "00"})
    assert response.status_code == 413


async def test_concurrent_duplicates_store_exactly_one_event_and_one_set_of_deliveries(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await add_distribution(session)
    await add_distribution(
        session, name="second", mapping=[{"source": "voucher.code", "attribute": "c2"}]
    )
    body = sample("customer.segment.entered")

    responses = await asyncio.gather(*(post(client, body) for _ in range(10)))
    assert sorted(r.status_code for r in responses) == [200] * 9 + [202]
    assert {r.json()["event_id"] for r in responses} == {responses[0].json()["event_id"]}
    assert await count(session, WebhookEvent) == 1
    assert await count(session, Delivery) == 2


async def test_a_distribution_created_after_the_first_webhook_is_matched_at_once(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    first = await post(client, sample("customer.order.paid"))
    assert first.json()["outcome"] == "unmatched"
    await add_distribution(session, triggers=["customer.order.paid"], filters={})
    second = sample("customer.order.paid")
    second["event"]["id"] = "evcus_another_order_paid"
    assert (await post(client, second)).json()["outcome"] == "matched"


async def test_a_paused_distribution_stops_matching_at_once(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await add_distribution(session)
    assert (await post(client, sample("customer.segment.entered"))).json()["deliveries"] == 1
    await session.execute(
        update(Distribution).values(status="paused", version=Distribution.version + 1)
    )
    await session.commit()
    again = sample("customer.segment.entered")
    again["event"]["id"] = "evcus_entered_again"
    assert (await post(client, again)).json()["outcome"] == "unmatched"


async def test_the_documented_fastapi_route_answers_like_the_fast_path(
    settings: Settings, engine: AsyncEngine, session: AsyncSession
) -> None:
    """The FastAPI route documents the endpoint and serves it wherever the fast path is not
    installed: same code underneath, same answers."""
    app = create_app(settings, engine=engine)
    stack = FastAPI.build_middleware_stack(app)  # the stack without the fast path

    async def without_fast_path(scope: Any, receive: Any, send: Any) -> None:
        scope["app"] = app
        await stack(scope, receive, send)

    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=without_fast_path)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                first = await post(client, sample("customer.order.paid"))
                again = await post(client, sample("customer.order.paid"))
                raw, headers = signed(sample("customer.order.paid"), secret="wrong")
                refused = await client.post(URL, content=raw, headers=headers)
        assert first.status_code == 202 and first.json()["outcome"] == "unmatched"
        assert again.status_code == 200 and again.json()["duplicate"] is True
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "bad_signature"
        assert await count(session, WebhookEvent) == 1
    finally:
        await session.rollback()  # end its transaction: TRUNCATE would wait for it forever
        await truncate_all(engine)


async def test_a_stored_distribution_that_no_longer_validates_does_not_stop_intake(
    client: httpx.AsyncClient, session: AsyncSession, caplog: pytest.LogCaptureFixture
) -> None:
    await add_distribution(session, name="good", filters={}, consent=None)
    await add_distribution(session, name="broken", filters={}, consent=None)
    # As a hand edit (or a rule tightened by an upgrade) could leave it: no code mapped.
    await session.execute(
        update(Distribution).where(Distribution.name == "broken").values(mapping=[])
    )
    await session.commit()

    response = await post(client, sample("customer.segment.entered"))

    assert response.status_code == 202, response.text
    assert response.json()["deliveries"] == 1
    delivery = (await session.execute(select(Delivery))).scalar_one()
    good = await session.execute(select(Distribution).where(Distribution.name == "good"))
    assert delivery.distribution_id == good.scalar_one().id
    assert "is not valid and matches nothing until it is fixed" in caplog.text


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_writer_log_lines_do_not_carry_the_first_requests_id(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    """The writer tasks start inside the first webhook's request; its request id must not
    stick to what they log later about other webhooks (`distributions reloaded`)."""
    handler = _Records()
    records = handler.records
    handler.addFilter(RedactSecrets([]))  # what adds the request id to a line
    inbox_logger = logging.getLogger("app.webhooks.inbox")
    level = inbox_logger.level
    inbox_logger.addHandler(handler)
    inbox_logger.setLevel(logging.INFO)
    try:
        await add_distribution(session)
        first = sample(SEGMENT)
        first["event"]["id"] = "ev_request_id_1"
        assert (await post(client, first, **{"x-request-id": "first-request"})).status_code == 202
        await add_distribution(session, name="second")  # the writers reload on the next write
        second = sample(SEGMENT)
        second["event"]["id"] = "ev_request_id_2"
        assert (await post(client, second, **{"x-request-id": "second"})).status_code == 202
    finally:
        inbox_logger.removeHandler(handler)
        inbox_logger.setLevel(level)
    reloads = [r for r in records if r.getMessage().startswith("distributions reloaded")]
    assert len(reloads) == 2
    assert [getattr(r, "request_id", None) for r in reloads] == [None, None]


async def test_webhooks_bypass_fastapis_per_request_telemetry_check(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    """FastAPI asks its native telemetry on every request whether OpenTelemetry is set up (5% of
    the intake's CPU under load); the webhook fast path does not go through that."""
    await add_distribution(session)
    assert (await client.get("/healthz")).status_code == 200  # the middleware stack is built
    app = client._transport.app  # type: ignore[attr-defined]
    if not hasattr(app, "_native_telemetry"):
        pytest.skip("this FastAPI has no native telemetry")

    class Refusing:
        def enabled(self) -> bool:
            raise AssertionError("the webhook path asked FastAPI's telemetry")

    app._native_telemetry = Refusing()
    assert (await post(client, sample("customer.segment.entered"))).status_code == 202
