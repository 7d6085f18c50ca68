"""Defects a review of the mapping against the Voucherify and Braze references found: each
test states what the sources ask for and fails without its fix."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from app.distributions import preview
from app.distributions.fields import FIELDS
from app.distributions.mapping import Send, Skip, resolve
from app.distributions.paths import MISSING, lookup
from app.distributions.schemas import DistributionConfig
from tests.factories import sample


def config(**fields: Any) -> DistributionConfig:
    body: dict[str, Any] = {
        "name": "review",
        "triggers": ["customer.segment.entered"],
        "mapping": [{"source": "voucher.code", "attribute": "code"}],
    }
    return DistributionConfig.model_validate({**body, **fields})


def test_a_reward_without_a_code_does_not_send_the_loyalty_card_code() -> None:
    envelope = sample("customer.rewarded")
    del envelope["data"]["reward"]["voucher"]
    envelope["data"]["reward"]["type"] = "MATERIAL"
    loyalty_card_code = envelope["data"]["voucher"]["code"]
    result = resolve(envelope=envelope, config=config(triggers=["customer.rewarded"]))
    sent = result.attributes.get("code") if isinstance(result, Send) else None
    assert sent != loyalty_card_code


def test_consent_is_checked_on_the_user_who_receives_the_attributes() -> None:
    envelope = sample("customer.redemption.succeeded")
    envelope["data"]["customer"]["metadata"] = {"braze_opt_in": True}
    envelope["data"]["holder"] = {
        **envelope["data"]["holder"],
        "id": "cust_holder",
        "source_id": "holder-usr-1",
        "metadata": {"braze_opt_in": False},
    }
    cfg = config(
        triggers=["customer.redemption.succeeded"],
        identity={"type": "external_id", "path": "holder.source_id"},
        consent={"metadata_key": "braze_opt_in"},
    )
    result = resolve(envelope=envelope, config=cfg)
    assert isinstance(result, Skip) and result.reason == "no_consent", result


def test_catalogued_balance_fields_exist_in_a_points_added_event() -> None:
    data = sample("customer.voucher.loyalty_card.points_added")["data"]
    offered = [f.source for f in FIELDS if "points_added" in f.events]
    assert offered, "the catalogue lists fields for points_added events"
    assert [s for s in offered if lookup(data, s) is MISSING] == []


@pytest.mark.parametrize("fmt", ["iso_datetime", "date"])
def test_liquid_for_a_date_attribute_formats_the_date(fmt: str) -> None:
    cfg = config(
        mapping=[
            {"source": "voucher.code", "attribute": "code"},
            {"source": "voucher.expiration_date", "attribute": "code_expires", "format": fmt},
        ]
    )
    snippets = preview.liquid(distribution_id=uuid.uuid4(), config=cfg).snippets
    expires = next(s for s in snippets if s.attribute == "code_expires")
    assert "| date:" in expires.with_default


def test_liquid_for_an_attribute_named_with_a_quote_stays_valid() -> None:
    cfg = config(mapping=[{"source": "voucher.code", "attribute": "it's_code"}])
    (snippet,) = preview.liquid(distribution_id=uuid.uuid4(), config=cfg).snippets
    assert "abort_message('no its_code')" in snippet.abort_when_blank
