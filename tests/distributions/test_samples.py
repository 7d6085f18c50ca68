"""Every sample webhook body (tests/fixtures/events) through a distribution listening to it."""

from __future__ import annotations

import pytest

from app.distributions.mapping import NeedsCustomer, Send, Skip, resolve
from app.distributions.paths import lookup
from app.distributions.schemas import DistributionConfig
from tests.factories import sample, sample_names

# event type -> where that body carries the code handed out, or the skip reason expected.
EXPECTED: dict[str, str] = {
    "customer.custom_event": "data.voucher.code",
    "customer.order.canceled": "skip:no_code",
    "customer.order.created": "skip:no_code",
    "customer.order.paid": "data.voucher.code",
    "customer.order.updated": "skip:no_code",
    "customer.publication.succeeded": "data.publication.voucher.code",
    "customer.redemption.rollback.succeeded": "data.voucher.code",
    "customer.redemption.succeeded": "data.voucher.code",
    "customer.reward_redemptions.completed": "data.reward.voucher.code",
    "customer.rewarded": "data.reward.voucher.code",
    "customer.segment.entered": "data.voucher.code",
    "customer.segment.left": "skip:no_code",
    "customer.voucher.gift.balance_added": "data.voucher.code",
    "customer.voucher.loyalty_card.points_added": "data.voucher.code",
    "manual_distribution_schedule": "data.voucher.code",
    "publication.succeeded": "data.vouchers[0].code",
    "redemption.rollback.succeeded": "data.voucher.code",
    "redemption.succeeded": "data.voucher.code",
    "voucher.gift.balance_added": "customer:cust_8fN2kQ4rT6vX1zB3mP5sL7wY",
    "voucher.loyalty_card.points_added": "data.voucher.code",
    "voucher.published": "data.voucher.code",
}


def test_there_is_a_sample_for_every_trigger() -> None:
    from app.distributions.triggers import KNOWN_TRIGGERS

    assert set(sample_names()) == set(EXPECTED) == set(KNOWN_TRIGGERS)


@pytest.mark.parametrize("event_type", sorted(EXPECTED))
def test_sample_maps_as_expected(event_type: str) -> None:
    envelope = sample(event_type)
    config = DistributionConfig.model_validate(
        {
            "name": event_type,
            "triggers": [event_type],
            "mapping": [
                {"source": "voucher.code", "attribute": "code"},
                {
                    "source": "voucher.expiration_date",
                    "attribute": "expires",
                    "format": "iso_datetime",
                },
                {"source": "campaign.name", "attribute": "campaign"},
            ],
        }
    )
    result = resolve(envelope=envelope, config=config)
    expected = EXPECTED[event_type]
    if expected.startswith("customer:"):
        assert isinstance(result, NeedsCustomer), result
        assert result.customer_id == expected.removeprefix("customer:")
        return
    if expected.startswith("skip:"):
        assert isinstance(result, Skip), result
        assert result.reason == expected.removeprefix("skip:")
        return
    assert isinstance(result, Send), result
    assert result.braze_user_key == "external_id:braze-usr-10042"
    assert result.attributes["external_id"] == "braze-usr-10042"
    assert result.attributes["code"] == lookup(envelope, expected)
    assert result.event_time is not None
