"""Coalescing: a distribution that may create the profile is not made update-only by another
(found by a review of the mapping against the Braze reference; fails without its fix)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.delivery.coalesce import DueDelivery, plan
from app.distributions.mapping import Send, resolve
from app.distributions.schemas import DistributionConfig
from tests.factories import sample

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def resolved(attribute: str, *, update_existing_only: bool) -> Send:
    config = DistributionConfig.model_validate(
        {
            "name": attribute,
            "triggers": ["customer.segment.entered"],
            "mapping": [{"source": "voucher.code", "attribute": attribute}],
            "update_existing_only": update_existing_only,
        }
    )
    result = resolve(envelope=sample("customer.segment.entered"), config=config)
    assert isinstance(result, Send), result
    return result


def test_an_update_only_distribution_does_not_stop_another_from_creating_the_profile() -> None:
    creates = resolved("welcome_code", update_existing_only=False)
    updates_only = resolved("vip_code", update_existing_only=True)
    result = plan(
        [
            DueDelivery(1, creates.braze_user_key, creates.attributes, NOW),
            DueDelivery(2, updates_only.braze_user_key, updates_only.attributes,
                        NOW + timedelta(seconds=1)),
        ],
        {},
    )  # fmt: skip
    sent = result.updates[0].object
    assert sent["welcome_code"] == "WELCOME-7QX2KD"
    assert sent.get("_update_existing_only", False) is False
