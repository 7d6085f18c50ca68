from __future__ import annotations

import json

import pytest

from app.distributions.envelope import EnvelopeError, parse
from tests.factories import sample


def raw(body: object) -> bytes:
    return json.dumps(body).encode()


def test_distribution_envelope_is_parsed() -> None:
    envelope = parse(raw(sample("customer.segment.entered")))
    assert envelope.event_type == "customer.segment.entered"
    assert envelope.source_object == "distribution"
    assert envelope.source_id.startswith("distr_")
    assert envelope.customer_source_id == "braze-usr-10042"
    assert envelope.known_type


def test_project_envelope_without_customer_takes_the_holder() -> None:
    envelope = parse(raw(sample("voucher.gift.balance_added")))
    assert envelope.source_object == "webhook"
    assert envelope.customer_id == "cust_8fN2kQ4rT6vX1zB3mP5sL7wY"
    assert envelope.customer_source_id is None


def test_unknown_event_types_parse_but_are_not_known() -> None:
    body = sample("customer.segment.entered")
    body["event"]["type"] = "customer.loyalty.tier.joined"
    assert not parse(raw(body)).known_type


def test_unknown_fields_are_ignored() -> None:
    body = sample("customer.order.paid")
    body["brand_new_field"] = {"x": 1}
    assert parse(raw(body)).event_type == "customer.order.paid"


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (
            raw(
                {
                    "id": "evt_1",
                    "object": "event",
                    "webhook_id": "wh_1",
                    "type": "redemption.succeeded",
                    "data": {},
                }
            ),
            "legacy v2018-08-01",
        ),
        (
            raw({"id": "whs_1", "type": "x", "data": {}, "source": {"id": "wh_1"}}),
            "event.id and event.type are required",
        ),
        (
            raw({"id": "whs_1", "event": {"id": "e", "type": "t"}, "data": {}}),
            "source.id is required",
        ),
        (
            raw({"event": {"id": "e", "type": "t"}, "source": {"id": "s"}, "data": []}),
            "data must be an object",
        ),
        (
            raw({"event": {"id": "e" * 101, "type": "t"}, "source": {"id": "s"}}),
            "event.id is longer",
        ),
    ],
)
def test_bodies_that_are_not_envelopes_say_why(body: bytes, complaint: str) -> None:
    with pytest.raises(EnvelopeError, match=complaint):
        parse(body)
