from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from app.distributions.schemas import DistributionConfig
from tests.factories import distribution_body


def errors(**overrides: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        DistributionConfig.model_validate(distribution_body(**overrides))
    return str(caught.value)


def test_the_design_example_is_valid() -> None:
    config = DistributionConfig.model_validate(distribution_body())
    assert config.identity.path == "customer.source_id"


def test_the_voucher_code_must_be_mapped() -> None:
    message = errors(mapping=[{"source": "voucher.expiration_date", "attribute": "expires"}])
    assert "the voucher code must be mapped" in message
    assert 'add {"source": "voucher.code", "attribute": "..."} to mapping' in message


def test_unset_needs_no_code_mapping() -> None:
    body = distribution_body(
        action="unset", mapping=[{"source": "voucher.expiration_date", "attribute": "x"}]
    )
    assert DistributionConfig.model_validate(body).action == "unset"


@pytest.mark.parametrize(
    ("attribute", "complaint"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("x" * 256, "at most 255"),
        ("$add", "must not start with $"),
        ("email", "is a Braze profile field"),
        ("first_name", "is a Braze profile field"),
        ("external_id", "is a Braze profile field"),
    ],
)
def test_attribute_names_follow_braze_rules(attribute: str, complaint: str) -> None:
    mapping = [{"source": "voucher.code", "attribute": attribute}]
    assert complaint in errors(mapping=mapping)


def test_attribute_names_are_unique() -> None:
    mapping = [
        {"source": "voucher.code", "attribute": "code"},
        {"source": "voucher.campaign", "attribute": "code"},
    ]
    assert "repeated: ['code']" in errors(mapping=mapping)


def test_unknown_triggers_are_refused() -> None:
    assert "unknown trigger(s) ['customer.segment.joined']" in errors(
        triggers=["customer.segment.joined"]
    )


def test_triggers_are_required() -> None:
    assert "at least 1" in errors(triggers=[])


@pytest.mark.parametrize(
    "path", ["voucher..code", "voucher.code.", "1voucher", "voucher[x]", "voucher code"]
)
def test_source_paths_must_be_well_formed(path: str) -> None:
    assert "is not a source path" in errors(mapping=[{"source": path, "attribute": "code"}])


def test_formats_are_from_the_list() -> None:
    message = errors(mapping=[{"source": "voucher.code", "attribute": "c", "format": "uppercase"}])
    assert "iso_datetime" in message


def test_user_alias_needs_a_label() -> None:
    assert "needs alias_label" in errors(identity={"type": "user_alias"})


def test_unknown_identity_type_is_refused() -> None:
    assert "external_id" in errors(identity={"type": "phone"})


def test_publish_code_source_needs_a_campaign() -> None:
    assert "campaign" in errors(code_source={"type": "publish"})


def test_unknown_fields_are_refused() -> None:
    assert "extra" in errors(colour="blue").lower()
