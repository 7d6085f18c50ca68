"""What a run's delivery maps from, and which distributions a run can use. Pure: no I/O.

A run has no webhook event, so it makes one per customer, shaped like Voucherify's own manual
send-out (`manual_distribution_schedule`, reference 1.4): the mapping engine, the field paths
and the publisher then treat it like any event without a code.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from app.distributions.schemas import DistributionConfig, Filters
from app.distributions.triggers import MANUAL_TRIGGER
from app.voucherify.segments import format_timestamp


def run_event_id(run_id: int) -> str:
    """The run's stand-in for a Voucherify event id: it keys the publications' source_id
    (distribution, run, customer), so a resumed run gets the codes it already published."""
    return f"run_{run_id}"


def run_envelope(
    *,
    run_id: int,
    distribution_id: uuid.UUID,
    customer: dict[str, Any],
    segment_id: str | None,
    created_at: datetime,
) -> dict[str, Any]:
    """The envelope of one run member, as a manual distribution webhook would carry it."""
    event_id = run_event_id(run_id)
    at = format_timestamp(created_at)
    data: dict[str, Any] = {
        "customer": customer,
        "distribution": {"id": event_id, "object": "run", "distribution_id": str(distribution_id)},
    }
    if segment_id is not None:
        data["segment"] = {"id": segment_id, "object": "segment"}
    return {
        "id": event_id,
        "created_at": at,
        "type": "voucher-relay run",
        "source": {"id": event_id, "object": "run"},
        "event": {"id": event_id, "type": MANUAL_TRIGGER, "created_at": at,
                  "entity_id": customer.get("id")},
        "data": data,
    }  # fmt: skip


def run_config(config: DistributionConfig) -> DistributionConfig:
    """The distribution as a run applies it: the audience takes the place of the triggers and
    filters (they select webhook events); code source, identity, consent and mapping apply."""
    return config.model_copy(update={"triggers": [MANUAL_TRIGGER], "filters": Filters()})


def not_runnable(config: DistributionConfig) -> str | None:
    """Why a run of this distribution could send nothing, or None when it can run."""
    if config.action == "set" and config.code_source.type != "publish":
        return (
            'this distribution takes its code from the event ("code_source": {"type": "event"}) '
            "and a manual run has no event: use a distribution with "
            '"code_source": {"type": "publish", "campaign": "..."}'
        )
    return None


def campaign_of(config: DistributionConfig) -> str | None:
    """The campaign a run publishes codes from; None when it publishes none (action unset)."""
    if config.action == "set" and config.code_source.type == "publish":
        return config.code_source.campaign
    return None
