"""A run member's envelope through the mapping engine, without I/O."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from app.distributions import mapping
from app.distributions.schemas import DistributionConfig
from app.runs.envelope import campaign_of, not_runnable, run_config, run_envelope, run_event_id
from app.worker.publisher import publication_source_id
from tests.factories import distribution_body

DISTRIBUTION = uuid.UUID("6f1d9a52-3c1e-4c55-9b0e-4d3c2b1a0f9e")
AT = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def _config(**overrides: object) -> DistributionConfig:
    body = distribution_body(**{"code_source": {"type": "publish", "campaign": "Welcome"},
                                **overrides})  # fmt: skip
    return DistributionConfig.model_validate(body)


def _envelope(customer: dict[str, Any], segment_id: str | None = "seg_1") -> dict[str, Any]:
    return run_envelope(
        run_id=7, distribution_id=DISTRIBUTION, customer=customer, segment_id=segment_id,
        created_at=AT,
    )  # fmt: skip


def test_a_consenting_member_needs_a_code_whatever_the_triggers_and_filters() -> None:
    # The distribution listens to segment events of another segment: a run applies anyway.
    config = run_config(_config(filters={"segment_id": "seg_other"}))
    customer = {"id": "cust_1", "source_id": "u-1", "metadata": {"braze_opt_in": True}}
    result = mapping.resolve(envelope=_envelope(customer, segment_id=None), config=config)
    assert result == mapping.NeedsPublish("Welcome", "external_id:u-1", customer)

    voucher = {"code": "WELCOME-1", "expiration_date": "2026-12-31T23:00:00.000Z"}
    sent = mapping.resolve(envelope=_envelope(customer), config=config, voucher=voucher)
    assert isinstance(sent, mapping.Send)
    assert sent.attributes["welcome_code"] == "WELCOME-1"
    assert sent.event_time == AT


def test_members_without_consent_or_identifier_are_skipped_with_the_reason() -> None:
    config = run_config(_config())
    refused = {"id": "cust_2", "source_id": "u-2", "metadata": {"braze_opt_in": False}}
    assert mapping.resolve(envelope=_envelope(refused), config=config).reason == "no_consent"  # type: ignore[union-attr]
    nameless = {"id": "cust_3", "metadata": {"braze_opt_in": True}}
    assert mapping.resolve(envelope=_envelope(nameless), config=config).reason == "no_identifier"  # type: ignore[union-attr]


def test_each_run_publishes_its_own_codes_and_only_once_per_customer() -> None:
    customer = {"id": "cust_1", "source_id": "u-1"}
    once = publication_source_id(DISTRIBUTION, run_event_id(7), customer)
    assert once == publication_source_id(DISTRIBUTION, run_event_id(7), customer)
    assert once != publication_source_id(DISTRIBUTION, run_event_id(8), customer)


def test_which_distributions_can_run() -> None:
    assert not_runnable(_config()) is None and campaign_of(_config()) == "Welcome"
    from_event = _config(code_source={"type": "event"})
    assert "code_source" in (not_runnable(from_event) or "")
    clearing = _config(code_source={"type": "event"}, action="unset")
    assert not_runnable(clearing) is None and campaign_of(clearing) is None
