from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from app.distributions.mapping import (
    NeedsCustomer,
    NeedsPublish,
    Send,
    Skip,
    find_voucher,
    resolve,
)
from app.distributions.schemas import DistributionConfig
from tests.factories import distribution_body, sample


def config(**overrides: Any) -> DistributionConfig:
    return DistributionConfig.model_validate(distribution_body(**overrides))


def send(envelope: dict[str, Any], cfg: DistributionConfig) -> Send:
    result = resolve(envelope=envelope, config=cfg)
    assert isinstance(result, Send), result
    return result


def test_segment_entered_maps_code_and_expiry_for_the_external_id() -> None:
    result = send(sample("customer.segment.entered"), config())
    assert result.braze_user_key == "external_id:braze-usr-10042"
    assert result.attributes == {
        "external_id": "braze-usr-10042",
        "welcome_code": "WELCOME-7QX2KD",
        "welcome_code_expires_at": "2026-04-09T21:59:59.000Z",
    }
    assert result.event_time == datetime(2026, 3, 10, 9, 0, 3, 530000, tzinfo=UTC)


def test_order_paid_maps_order_amount_in_decimals() -> None:
    cfg = config(
        triggers=["customer.order.paid"],
        filters={},
        mapping=[
            {"source": "voucher.code", "attribute": "next_order_code"},
            {
                "source": "order.amount",
                "attribute": "last_order_total",
                "format": "minor_units_to_decimal",
            },
            {"source": "order.status", "attribute": "last_order_status"},
        ],
    )
    envelope = sample("customer.order.paid")
    result = send(envelope, cfg)
    assert result.attributes["next_order_code"] == "WELCOME-M4T8RZ"
    assert result.attributes["last_order_total"] == envelope["data"]["order"]["amount"] / 100
    assert result.attributes["last_order_status"] == "PAID"


def test_loyalty_points_map_as_integers() -> None:
    cfg = config(
        triggers=["customer.voucher.loyalty_card.points_added"],
        filters={},
        mapping=[
            {"source": "voucher.code", "attribute": "loyalty_card"},
            {"source": "voucher.loyalty_card.balance", "attribute": "points", "format": "integer"},
            {"source": "voucher.expiration_date", "attribute": "card_expires", "format": "date"},
        ],
    )
    result = send(sample("customer.voucher.loyalty_card.points_added"), cfg)
    assert result.attributes == {
        "external_id": "braze-usr-10042",
        "loyalty_card": "LOY-4HX9QK2M",
        "points": 1040,
        "card_expires": None,  # the card never expires: the attribute is cleared, not invented
    }


def test_project_publication_reads_the_code_from_vouchers_array() -> None:
    cfg = config(triggers=["publication.succeeded"], filters={})
    assert send(sample("publication.succeeded"), cfg).attributes["welcome_code"] == "WELCOME-7QX2KD"


def test_manual_distribution_maps_its_code() -> None:
    cfg = config(triggers=["manual_distribution_schedule"], filters={})
    assert send(sample("manual_distribution_schedule"), cfg).attributes["welcome_code"] == (
        "WELCOME-H2W6YB"
    )


def test_gift_event_without_customer_asks_for_the_holder() -> None:
    cfg = config(triggers=["voucher.gift.balance_added"], filters={}, consent=None)
    result = resolve(envelope=sample("voucher.gift.balance_added"), config=cfg)
    assert isinstance(result, NeedsCustomer)
    assert result.customer_id == "cust_8fN2kQ4rT6vX1zB3mP5sL7wY"


def test_gift_event_with_the_customer_looked_up_maps() -> None:
    cfg = config(triggers=["voucher.gift.balance_added"], filters={}, consent=None)
    envelope = sample("voucher.gift.balance_added")
    envelope["data"]["customer"] = {
        "id": "cust_8fN2kQ4rT6vX1zB3mP5sL7wY",
        "source_id": "braze-usr-10042",
    }
    assert send(envelope, cfg).attributes["welcome_code"] == "GIFT-8KD2P9QX"


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"voucher": {"code": "A"}}, "A"),
        ({"vouchers": [{"code": "B"}]}, "B"),
        ({"publication": {"voucher": {"code": "C"}}}, "C"),
        ({"reward": {"voucher": {"code": "D"}}}, "D"),
        ({"voucher": {"code": ""}, "vouchers": [{"code": "E"}]}, "E"),
    ],
)
def test_the_code_is_found_wherever_the_event_carries_it(data: dict[str, Any], where: str) -> None:
    voucher = find_voucher(data)
    assert voucher is not None and voucher["code"] == where


def test_other_event_types_are_filtered_out() -> None:
    result = resolve(envelope=sample("customer.order.paid"), config=config())
    assert isinstance(result, Skip) and result.reason == "filtered_out"


def test_segment_filter_skips_other_segments() -> None:
    result = resolve(
        envelope=sample("customer.segment.entered"),
        config=config(filters={"segment_id": "seg_other"}),
    )
    assert isinstance(result, Skip) and result.reason == "filtered_out"
    assert "seg_other" in result.detail


@pytest.mark.parametrize("campaign", ["Welcome 10% Off", "camp_Rt5Yh2Nq8Lp4Vx7Kc1Mz3Bw6"])
def test_campaign_filter_accepts_id_or_name(campaign: str) -> None:
    cfg = config(filters={"campaign": campaign})
    assert isinstance(resolve(envelope=sample("customer.segment.entered"), config=cfg), Send)


def test_campaign_filter_skips_other_campaigns() -> None:
    cfg = config(filters={"campaign": "Spring sale"})
    result = resolve(envelope=sample("customer.segment.entered"), config=cfg)
    assert isinstance(result, Skip) and result.reason == "filtered_out"


def test_custom_event_filter_matches_the_event_name() -> None:
    envelope = sample("customer.segment.entered")
    envelope["event"]["type"] = "customer.custom_event"
    envelope["data"]["event"] = {"type": "cart_abandoned"}
    wanted = config(triggers=["customer.custom_event"], filters={"custom_event": "cart_abandoned"})
    other = config(triggers=["customer.custom_event"], filters={"custom_event": "signed_up"})
    assert isinstance(resolve(envelope=envelope, config=wanted), Send)
    skipped = resolve(envelope=envelope, config=other)
    assert isinstance(skipped, Skip) and skipped.reason == "filtered_out"


def test_customer_without_consent_is_skipped() -> None:
    envelope = sample("customer.segment.entered")
    envelope["data"]["customer"]["metadata"]["braze_opt_in"] = False
    result = resolve(envelope=envelope, config=config())
    assert isinstance(result, Skip) and result.reason == "no_consent"
    assert result.braze_user_key == "external_id:braze-usr-10042"


def test_missing_consent_flag_counts_as_no_consent() -> None:
    envelope = sample("customer.segment.entered")
    del envelope["data"]["customer"]["metadata"]["braze_opt_in"]
    result = resolve(envelope=envelope, config=config())
    assert isinstance(result, Skip) and result.reason == "no_consent"


def test_consent_may_require_a_specific_value() -> None:
    envelope = sample("customer.segment.entered")
    envelope["data"]["customer"]["metadata"]["marketing"] = "granted"
    cfg = config(consent={"metadata_key": "marketing", "value": "granted"})
    assert isinstance(resolve(envelope=envelope, config=cfg), Send)


def test_event_without_code_is_skipped_as_no_code() -> None:
    envelope = sample("customer.segment.entered")
    del envelope["data"]["voucher"]
    result = resolve(envelope=envelope, config=config())
    assert isinstance(result, Skip) and result.reason == "no_code"


def test_publish_distribution_asks_for_a_code_when_the_event_has_none() -> None:
    envelope = sample("customer.segment.entered")
    del envelope["data"]["voucher"]
    cfg = config(code_source={"type": "publish", "campaign": "Welcome 10% Off"})
    result = resolve(envelope=envelope, config=cfg)
    assert isinstance(result, NeedsPublish)
    assert result.campaign == "Welcome 10% Off"
    assert result.customer["source_id"] == "braze-usr-10042"


def test_a_published_voucher_overrides_the_event() -> None:
    envelope = sample("customer.segment.entered")
    del envelope["data"]["voucher"]
    cfg = config(code_source={"type": "publish", "campaign": "Welcome 10% Off"})
    published = {"code": "PUB-123", "expiration_date": None}
    result = resolve(envelope=envelope, config=cfg, voucher=published)
    assert isinstance(result, Send)
    assert result.attributes["welcome_code"] == "PUB-123"


WELCOME = "Welcome 10% Off"  # the campaign of the samples' welcome codes


@pytest.mark.parametrize("campaign", [WELCOME, "camp_Rt5Yh2Nq8Lp4Vx7Kc1Mz3Bw6"])
def test_a_code_the_send_out_published_from_the_campaign_is_used_not_published_again(
    campaign: str,
) -> None:
    # A "+code" send-out: Voucherify published the code, from the very campaign (name or id).
    cfg = config(code_source={"type": "publish", "campaign": campaign})
    result = send(sample("customer.segment.entered"), cfg)
    assert result.attributes["welcome_code"] == "WELCOME-7QX2KD"


def test_a_code_published_from_another_campaign_does_not_replace_publishing() -> None:
    cfg = config(code_source={"type": "publish", "campaign": "Summer 2026"})
    result = resolve(envelope=sample("customer.segment.entered"), config=cfg)
    assert isinstance(result, NeedsPublish) and result.campaign == "Summer 2026"


@pytest.mark.parametrize(
    ("event_type", "carried"),
    [
        ("customer.voucher.loyalty_card.points_added", "the loyalty card"),
        ("customer.voucher.gift.balance_added", "the gift card"),
        ("customer.redemption.succeeded", "the code just redeemed"),
    ],
)
def test_a_card_or_a_redeemed_code_in_the_event_is_not_the_code_to_send(
    event_type: str, carried: str
) -> None:
    envelope = sample(event_type)
    held = find_voucher(envelope["data"], event_type)
    assert held is not None, f"the sample carries {carried}"
    # Even when that voucher is of the distribution's campaign: the event does not hand it out.
    cfg = config(
        triggers=[event_type], filters={}, consent=None,
        code_source={"type": "publish", "campaign": held["campaign"]},
    )  # fmt: skip
    result = resolve(envelope=envelope, config=cfg)
    assert isinstance(result, NeedsPublish), f"{carried} was sent as the code: {result}"


def test_unset_sends_null_for_every_mapped_attribute() -> None:
    cfg = config(triggers=["customer.segment.left"], filters={}, consent=None, action="unset")
    envelope = sample("customer.segment.entered")
    envelope["event"]["type"] = "customer.segment.left"
    del envelope["data"]["voucher"]
    assert send(envelope, cfg).attributes == {
        "external_id": "braze-usr-10042",
        "welcome_code": None,
        "welcome_code_expires_at": None,
    }


def test_long_values_are_refused_not_truncated() -> None:
    envelope = sample("customer.segment.entered")
    envelope["data"]["voucher"]["code"] = "X" * 256
    result = resolve(envelope=envelope, config=config())
    assert isinstance(result, Skip) and result.reason == "value_too_long"
    assert "256" in result.detail


@pytest.mark.parametrize(
    ("metadata", "named"),
    [
        ({"note": "N" * 256}, "customer_metadata.note: string of 256 characters"),
        ({"tags": ["ok", "T" * 300]}, "customer_metadata.tags[1]: string of 300 characters"),
        ({"K" * 256: 1}, "key 'customer_metadata."),
    ],
)
def test_a_long_string_or_key_inside_a_raw_object_is_refused_too(
    metadata: dict[str, Any], named: str
) -> None:
    # Braze drops such a value without an error: the delivery would say delivered.
    envelope = sample("customer.segment.entered")
    envelope["data"]["customer"]["metadata"] = {**metadata, "braze_opt_in": True}
    cfg = config(mapping=[
        {"source": "voucher.code", "attribute": "welcome_code"},
        {"source": "customer.metadata", "attribute": "customer_metadata", "format": "raw"},
    ])  # fmt: skip
    result = resolve(envelope=envelope, config=cfg)
    assert isinstance(result, Skip) and result.reason == "value_too_long", result
    assert result.detail.startswith("customer_metadata (customer.metadata): ")
    assert named in result.detail


def test_a_raw_object_within_the_limits_is_sent_whole() -> None:
    envelope = sample("customer.segment.entered")
    metadata = {"braze_opt_in": True, "tier": "gold", "tags": ["a", "b"]}
    envelope["data"]["customer"]["metadata"] = metadata
    cfg = config(mapping=[
        {"source": "voucher.code", "attribute": "welcome_code"},
        {"source": "customer.metadata", "attribute": "customer_metadata", "format": "raw"},
    ])  # fmt: skip
    assert send(envelope, cfg).attributes["customer_metadata"] == metadata


def test_unformattable_values_are_refused_with_the_attribute_named() -> None:
    envelope = sample("customer.segment.entered")
    envelope["data"]["voucher"]["expiration_date"] = "next tuesday"
    result = resolve(envelope=envelope, config=config())
    assert isinstance(result, Skip) and result.reason == "invalid_value"
    assert "welcome_code_expires_at" in result.detail


def test_a_nul_character_in_a_value_skips_rather_than_sending_another_value() -> None:
    """Postgres cannot store it, and without it the customer would get a code that is not
    theirs: the delivery is skipped with the attribute named."""
    envelope = sample("customer.segment.entered")
    envelope["data"]["voucher"]["code"] = "WELCOME\x00"
    result = resolve(envelope=envelope, config=config())
    assert isinstance(result, Skip) and result.reason == "invalid_value", result
    assert "NUL" in result.detail and "\x00" not in result.detail


def test_a_nul_character_nested_in_a_raw_value_skips_too() -> None:
    envelope = sample("customer.segment.entered")
    envelope["data"]["customer"]["metadata"]["tier\x00"] = "gold"
    cfg = config(
        mapping=[
            {"source": "voucher.code", "attribute": "welcome_code"},
            {"source": "customer.metadata", "attribute": "profile", "format": "raw"},
        ]
    )
    result = resolve(envelope=envelope, config=cfg)
    assert isinstance(result, Skip) and result.reason == "invalid_value"
    assert "profile" in result.detail


def test_fields_the_event_does_not_carry_are_left_out() -> None:
    cfg = config(
        mapping=[
            {"source": "voucher.code", "attribute": "code"},
            {"source": "order.amount", "attribute": "order_total"},
        ]
    )
    assert "order_total" not in send(sample("customer.segment.entered"), cfg).attributes


def test_envelope_fields_are_reachable_under_webhook() -> None:
    cfg = config(
        mapping=[
            {"source": "voucher.code", "attribute": "code"},
            {"source": "webhook.event.type", "attribute": "code_reason"},
            {"source": "webhook.project_id", "attribute": "voucherify_project"},
        ]
    )
    attributes = send(sample("customer.segment.entered"), cfg).attributes
    assert attributes["code_reason"] == "customer.segment.entered"
    assert attributes["voucherify_project"] == "proj_Hq4T2bWm"


@pytest.mark.parametrize(
    ("identity", "expected_key", "expected_identifier"),
    [
        (
            {"type": "external_id"},
            "external_id:braze-usr-10042",
            {"external_id": "braze-usr-10042"},
        ),
        (
            {"type": "user_alias", "alias_label": "voucherify"},
            "user_alias:voucherify:braze-usr-10042",
            {
                "user_alias": {"alias_name": "braze-usr-10042", "alias_label": "voucherify"},
                "_update_existing_only": False,
            },
        ),
        (
            {"type": "email"},
            "email:mia.schneider@example.com",
            {"email": "mia.schneider@example.com"},
        ),
        (
            {"type": "braze_id", "path": "customer.metadata.braze_id"},
            "braze_id:5f9d3c0e8b1a",
            {"braze_id": "5f9d3c0e8b1a"},
        ),
        (
            {"type": "external_id", "path": "customer.id"},
            "external_id:cust_8fN2kQ4rT6vX1zB3mP5sL7wY",
            {"external_id": "cust_8fN2kQ4rT6vX1zB3mP5sL7wY"},
        ),
    ],
)
def test_every_identity_type_builds_its_braze_identifier(
    identity: dict[str, Any], expected_key: str, expected_identifier: dict[str, Any]
) -> None:
    envelope = sample("customer.segment.entered")
    envelope["data"]["customer"]["metadata"]["braze_id"] = "5f9d3c0e8b1a"
    result = send(envelope, config(identity=identity))
    assert result.braze_user_key == expected_key
    identifier = {k: v for k, v in result.attributes.items() if not k.startswith("welcome_code")}
    assert identifier == expected_identifier


def test_missing_identifier_is_skipped() -> None:
    envelope = sample("customer.segment.entered")
    envelope["data"]["customer"]["source_id"] = None
    result = resolve(envelope=envelope, config=config())
    assert isinstance(result, Skip) and result.reason == "no_identifier"


@pytest.mark.parametrize(
    ("identity", "field"),
    [
        ({"type": "external_id"}, "source_id"),
        ({"type": "email"}, "email"),
        ({"type": "user_alias", "alias_label": "voucherify"}, "source_id"),
        ({"type": "braze_id", "path": "customer.metadata.braze_id"}, "braze_id"),
    ],
)
def test_an_identifier_up_to_987_bytes_is_sent_and_a_longer_one_is_no_identifier(
    identity: dict[str, Any], field: str
) -> None:
    """987 bytes is Braze's bound for external ids; every identifier gets it (its key is indexed,
    and a column limit failed the whole webhook instead: issue 15)."""
    envelope = sample("customer.segment.entered")
    customer = envelope["data"]["customer"]
    where = customer["metadata"] if field == "braze_id" else customer
    where[field] = "é" * 493 + "x"  # 987 bytes in UTF-8
    assert isinstance(resolve(envelope=envelope, config=config(identity=identity)), Send)
    where[field] += "x"
    result = resolve(envelope=envelope, config=config(identity=identity))
    assert isinstance(result, Skip) and result.reason == "no_identifier", result
    assert "988 bytes" in result.detail and result.braze_user_key is None


def test_an_identifier_with_a_nul_character_is_no_identifier() -> None:
    """Dropping the NUL would address another Braze user: skipped, with no user key."""
    envelope = sample("customer.segment.entered")
    envelope["data"]["customer"]["source_id"] = "usr\x00x"
    result = resolve(envelope=envelope, config=config())
    assert isinstance(result, Skip) and result.reason == "no_identifier", result
    assert result.braze_user_key is None and "\x00" not in result.detail


def test_update_existing_only_is_passed_to_braze() -> None:
    result = send(sample("customer.segment.entered"), config(update_existing_only=True))
    assert result.attributes["_update_existing_only"] is True


def test_an_event_without_a_type_is_explained_in_words() -> None:
    result = resolve(envelope={"data": {}}, config=config())
    assert isinstance(result, Skip) and result.reason == "filtered_out"
    assert result.detail.startswith("the event has no event.type")
    assert "object at 0x" not in result.detail


def test_a_missing_value_reads_as_missing() -> None:
    from app.distributions.paths import MISSING

    assert repr(MISSING) == "<missing>"
