"""Properties of the envelope parser (app/distributions/envelope.py) and of how intake answers
bodies."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.distributions.envelope import Envelope, EnvelopeError, parse
from app.distributions.paths import lookup
from app.distributions.triggers import KNOWN_TRIGGERS
from tests.conftest import WRITE_TOKEN, WRITER, committing_app_client
from tests.factories import WEBHOOK_SECRET, distribution_body, signed
from tests.properties.strategies import envelopes, json_values, zones

URL = "/webhooks/voucherify"


def encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def parse_or_refuse(raw: bytes) -> Envelope | EnvelopeError:
    """The only two outcomes the parser may have; anything else escapes and fails the test."""
    try:
        return parse(raw)
    except EnvelopeError as exc:
        assert str(exc), "a refusal says why"
        return exc


@given(body=envelopes())
def test_a_valid_envelope_round_trips_its_key_fields(body: dict[str, Any]) -> None:
    envelope = parse(encode(body))
    assert envelope.body == body
    assert (envelope.event_id, envelope.event_type) == (body["event"]["id"], body["event"]["type"])
    assert envelope.source_id == body["source"]["id"]
    assert envelope.source_object == body["source"]["object"]
    assert (envelope.send_out_id, envelope.project_id) == (body["id"], body["project_id"])
    customer = body["data"]["customer"]
    assert (envelope.customer_id, envelope.customer_source_id) == (
        customer["id"],
        customer["source_id"],
    )
    assert envelope.known_type == (body["event"]["type"] in KNOWN_TRIGGERS)
    # The event time, kept to the millisecond in UTC (what Braze and attribute_state compare).
    occurred = datetime.fromisoformat(body["event"]["created_at"])
    assert envelope.occurred_at is not None and envelope.occurred_at.tzinfo is not None
    assert timedelta(0) <= occurred - envelope.occurred_at < timedelta(milliseconds=1)


@given(raw=st.binary(max_size=400))
def test_arbitrary_bytes_are_parsed_or_refused_never_crash(raw: bytes) -> None:
    parse_or_refuse(raw)


@given(value=json_values())
def test_arbitrary_json_is_parsed_or_refused_never_crash(value: Any) -> None:
    parse_or_refuse(encode(value))


@given(body=envelopes(), key=st.text(max_size=10), value=json_values(5))
def test_an_envelope_with_arbitrary_values_in_its_key_fields_is_parsed_or_refused(
    body: dict[str, Any], key: str, value: Any
) -> None:
    for part in ("event", "source", "data"):
        mangled = {**body, part: {**body[part], key: value}}
        parse_or_refuse(encode(mangled))
        parse_or_refuse(encode({**body, part: value}))


@given(body=envelopes(), marker=st.sampled_from(["object", "webhook_id"]))
def test_legacy_bodies_are_refused_even_when_otherwise_valid(
    body: dict[str, Any], marker: str
) -> None:
    legacy = {**body, marker: "event" if marker == "object" else "wh_1"}
    with pytest.raises(EnvelopeError, match="legacy v2018-08-01"):
        parse(encode(legacy))


@given(
    body=envelopes(),
    missing=st.sampled_from([("event", "id"), ("event", "type"), ("source", "id")]),
    replacement=st.none() | st.just("") | st.integers() | st.lists(st.integers(), max_size=2),
)
def test_an_envelope_without_its_ids_is_refused(
    body: dict[str, Any], missing: tuple[str, str], replacement: Any
) -> None:
    part, key = missing
    broken = {**body, part: {**body[part], key: replacement}}
    with pytest.raises(EnvelopeError, match="required"):
        parse(encode(broken))


@given(body=envelopes(), field=st.sampled_from(["event.id", "event.type", "source.id"]))
def test_an_id_with_a_nul_character_is_refused(body: dict[str, Any], field: str) -> None:
    part, key = field.split(".")
    broken = {**body, part: {**body[part], key: body[part][key] + "\x00"}}
    with pytest.raises(EnvelopeError, match=f"{field} contains the NUL character"):
        parse(encode(broken))


@given(body=envelopes())
def test_a_search_key_with_a_nul_character_is_left_empty(body: dict[str, Any]) -> None:
    customer = {"id": "cust\x00", "source_id": "\x00"}
    envelope = parse(encode({**body, "data": {**body["data"], "customer": customer}}))
    assert envelope.customer_source_id is None
    assert envelope.customer_id in (None, lookup(body, "data.voucher.holder_id"))


# Intake over HTTP: the fast path and the real inbox, which commits through its own pool.
@pytest.fixture(scope="module")
async def intake_client(engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    """Intake with a distribution listening to every trigger: envelopes also make deliveries."""
    settings = Settings(
        _env_file=None,
        voucherify_webhook_secret=WEBHOOK_SECRET,
        ops_api_tokens=f"ops:write:{WRITE_TOKEN}",
    )
    async with committing_app_client(settings, engine) as client:
        everything = distribution_body(
            triggers=sorted(KNOWN_TRIGGERS), filters={}, consent=None,
            mapping=[{"source": "voucher.code", "attribute": "code"},
                     {"source": "customer.name", "attribute": "name", "format": "string"}],
        )  # fmt: skip
        created = await client.post("/api/v1/distributions", json=everything, headers=WRITER)
        assert created.status_code == 201, created.text
        yield client


def is_error_answer(response: httpx.Response, status: int, code: str) -> bool:
    body = response.json()
    return (
        response.status_code == status
        and body["error"]["code"] == code
        and bool(body["error"]["message"])
    )


@given(raw=st.binary(max_size=300) | st.builds(encode, json_values()))
async def test_intake_answers_a_signed_non_envelope_400_and_an_envelope_2xx(
    intake_client: httpx.AsyncClient, raw: bytes
) -> None:
    _, headers = signed(raw)
    response = await intake_client.post(URL, content=raw, headers=headers)
    if isinstance(parse_or_refuse(raw), EnvelopeError):
        assert is_error_answer(response, 400, "invalid_webhook"), response.text
    else:
        assert response.status_code in (200, 202), response.text


@given(body=envelopes())
async def test_intake_stores_any_valid_envelope_once(
    intake_client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    raw, headers = signed(encode(body))
    first = await intake_client.post(URL, content=raw, headers=headers)
    again = await intake_client.post(URL, content=raw, headers=headers)
    assert first.status_code in (200, 202), first.text  # 200: an earlier example had its ids
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["event_id"] == first.json()["event_id"]


@given(raw=st.binary(max_size=300) | st.builds(encode, envelopes()))
async def test_intake_refuses_unsigned_or_wrongly_signed_bodies_before_reading_them(
    intake_client: httpx.AsyncClient, raw: bytes
) -> None:
    _, wrong = signed(raw, secret=WEBHOOK_SECRET + "-old")
    for headers in ({}, wrong):
        response = await intake_client.post(URL, content=raw, headers=headers)
        assert is_error_answer(response, 401, "bad_signature"), response.text


@given(body=envelopes(), event_time=st.datetimes(timezones=zones).map(str) | json_values(3))
def test_an_unusable_event_time_falls_back_to_the_send_out_time(
    body: dict[str, Any], event_time: Any
) -> None:
    envelope = parse(encode({**body, "event": {**body["event"], "created_at": event_time}}))
    fallback = parse(encode({**body, "event": {**body["event"], "created_at": None}}))
    assert fallback.occurred_at is not None  # the send-out's created_at
    assert envelope.occurred_at is not None
