"""What one Braze answer means beyond the deliveries it carried: for every sender to the
workspace (block, unblock, pause, the end of an outage) and for the objects Braze refused that
held several deliveries' values. A new answer class starts in app/braze/classify.py (its
`Kind`); what the workers do about it, here; what becomes of its deliveries, in outcomes.py."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from app.braze.classify import Kind
from app.braze.client import BrazeCallResult
from app.delivery import coalesce
from app.delivery.gate import BrazeGate
from app.delivery.store.queue import DeliveryQueue

# The worker cycle's own lines, under the logger operators already filter on.
logger = logging.getLogger("app.delivery.worker")


async def react_to(
    call: BrazeCallResult, *, gate: BrazeGate, queue: DeliveryQueue, probing: bool,
    low_remaining_fraction: float,
) -> None:  # fmt: skip
    """What the answer means for everyone sending to this workspace."""
    now = datetime.now(UTC)
    kind = call.kind
    if kind is Kind.CONFIG_ERROR:
        logger.error(
            "Braze refused the configuration (HTTP %s: %s); sending stops, deliveries wait, "
            "probing every %.0f s", call.status_code, call.classification.message,
            gate.probe_interval,
        )  # fmt: skip
        await gate.block(f"HTTP {call.status_code}: {call.classification.message}")
        return
    if probing and await gate.unblock():
        logger.warning("Braze accepts the configuration again: sending resumes")
    if kind is Kind.RETRY:
        await gate.failed()
    elif kind is Kind.DELIVERED and (since := await gate.answered()) is not None:
        # Without this, what failed during an outage waits for its own next retry: up to
        # hours after Braze is back. The gate's budget paces the catch-up.
        hurried = await queue.hurry_retries(failed_since=since)
        logger.warning(
            "Braze answers again after failing since %s: %d deliveries waiting on a retry "
            "are due now", since.isoformat(timespec="seconds"), hurried,
        )  # fmt: skip
    retry_after = call.classification.retry_after
    if kind in (Kind.RATE_LIMITED, Kind.RETRY) and retry_after is not None:
        # 429, or a 5xx with Retry-After: Braze asks every sender to wait.
        logger.warning("Braze answered %s: pausing %s", call.status_code, retry_after)
        await gate.pause(until=now + retry_after)
        return
    reading = call.classification.rate_limit
    if (
        reading is not None
        and reading.limit
        and reading.remaining is not None
        and reading.resets_in is not None
        and reading.remaining <= reading.limit * low_remaining_fraction
    ):
        logger.info("Braze rate limit nearly spent (%d left): pausing", reading.remaining)
        await gate.pause(until=now + reading.resets_in)


def refused_together(
    call: BrazeCallResult, updates: list[coalesce.UserUpdate]
) -> list[coalesce.UserUpdate]:
    """The objects Braze refused that carried more than one delivery's values."""
    if call.kind not in (Kind.DELIVERED, Kind.REJECTED):
        return []
    return [
        updates[index]
        for index in sorted(call.classification.failed)
        if index < len(updates) and len(updates[index].delivery_ids) > 1
    ]
