"""Which distributions an event creates deliveries for, and what each delivery will send."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from app.delivery.models import PENDING, SKIPPED
from app.distributions import mapping
from app.distributions.envelope import Envelope
from app.distributions.schemas import DistributionConfig

# failed: stored, but its deliveries could not be planned or stored (the log says why); it is
# answered 2xx all the same (a 5xx is retried for a day, then Voucherify pauses the webhook),
# to be replayed (POST /api/v1/events/{id}/replay) once the cause is fixed.
Outcome = Literal["matched", "unmatched", "ignored", "failed"]


@dataclass(frozen=True)
class MatchableDistribution:
    id: uuid.UUID
    version: int
    config: DistributionConfig


def plan_deliveries(
    *, envelope: Envelope, distributions: Iterable[MatchableDistribution]
) -> list[dict[str, Any]]:
    """One delivery row per active distribution whose triggers and filters match the event.

    Resolution happens here: the attributes (or the reason to skip) are stored on the delivery,
    so the audit log shows exactly what will be sent. Filtered-out distributions get no row.
    """
    rows = []
    for distribution in distributions:
        if envelope.event_type not in distribution.config.triggers:
            continue
        result = mapping.resolve(
            envelope=envelope.body, config=distribution.config, occurred_at=envelope.occurred_at
        )
        if isinstance(result, mapping.Skip) and result.reason == mapping.FILTERED_OUT:
            continue
        row: dict[str, Any] = {
            "distribution_id": str(distribution.id),
            "distribution_version": distribution.version,
            "braze_user_key": (
                None if isinstance(result, mapping.NeedsCustomer) else result.braze_user_key
            ),
            "attributes": None,
            "skip_reason": None,
            "last_error": None,
            "status": PENDING,
        }
        if isinstance(result, mapping.Send):
            row["attributes"] = result.attributes
        elif isinstance(result, mapping.Skip):
            row.update(status=SKIPPED, skip_reason=result.reason, last_error=result.detail)
        # NeedsPublish, NeedsCustomer: pending without attributes; the worker's publisher looks
        # the customer up and publishes a code first (app/worker/publisher.py).
        rows.append(row)
    return rows
