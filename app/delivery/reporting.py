"""What operators see of deliveries once their outcome is recorded: the settled counter, and log
lines for what went wrong (a failed Braze request, a delivery that failed or went dead).

Nothing is logged per delivery on the happy path: a drain records 75 deliveries per request,
thousands a second. Lines carry delivery and distribution ids, never Braze user keys (customer
identifiers), and never Braze's answer text (it may quote what was sent): the delivery's
attempts in the ops API hold that.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import asyncpg

from app.braze.classify import Kind
from app.braze.client import BrazeCallResult
from app.delivery.coalesce import DueDelivery
from app.delivery.models import DEAD, DELIVERED, FAILED, PENDING, SKIPPED
from app.delivery.outcomes import DeliveryChange
from app.metrics.registry import count_settled, observe_delivery_latency

logger = logging.getLogger(__name__)

SETTLED = frozenset({DELIVERED, SKIPPED, FAILED, DEAD})
# Delivery ids named in a request's line (the request carries up to 75).
SAMPLE_IDS = 5
_DISTRIBUTIONS = "SELECT id, distribution_id FROM deliveries WHERE id = ANY($1::bigint[])"


def landed_changes(changes: Sequence[DeliveryChange], applied: set[int]) -> list[DeliveryChange]:
    """The changes that landed (`queue.record` returned their ids); one WARNING for those that
    did not: their lease expired while Braze answered and another worker took the delivery."""
    landed = [c for c in changes if c.delivery_id in applied]
    lost = [c.delivery_id for c in changes if c.delivery_id not in applied]
    if lost:
        shown = ", ".join(map(str, lost[:SAMPLE_IDS])) + (", ..." if len(lost) > SAMPLE_IDS else "")
        logger.warning(
            "%d deliveries (%s) were taken by another worker before this one recorded their "
            "answer (the lease, DELIVERY_LEASE_SECONDS, expired meanwhile): the attempt is "
            "recorded, the delivery's state is the other worker's",
            len(lost), shown, extra={"delivery_ids": lost[:SAMPLE_IDS]},
        )  # fmt: skip
    return landed


def observe_latencies(changes: Sequence[DeliveryChange], deliveries: Sequence[DueDelivery]) -> None:
    """How long each delivery Braze accepted took from its creation (the latency operators
    are promised)."""
    delivered = {c.delivery_id for c in changes if c.status == DELIVERED}
    if not delivered:
        return
    now = datetime.now(UTC)
    for delivery in deliveries:
        if delivery.id in delivered and delivery.created_at is not None:
            observe_delivery_latency(delivery.trigger, (now - delivery.created_at).total_seconds())


def count_settled_changes(
    changes: Sequence[DeliveryChange], skip_reasons: Mapping[int, str] | None = None
) -> None:
    """Count the recorded changes that settle a delivery: one increment per outcome (and skip
    reason), whatever the number of deliveries."""
    groups: Counter[tuple[str, str]] = Counter()
    for change in changes:
        if change.status in SETTLED:
            reason = (
                (skip_reasons or {}).get(change.delivery_id, "") if change.status == SKIPPED else ""
            )
            groups[(change.status, reason)] += 1
    for (outcome, reason), deliveries in groups.items():
        count_settled(outcome, reason, deliveries)


def log_failed_request(call: BrazeCallResult, changes: Sequence[DeliveryChange]) -> None:
    """One WARNING for a request Braze did not take (5xx, timeout, refused connection, a 4xx
    refusing the whole request): what happened, to how many deliveries, when they retry."""
    if call.kind not in (Kind.RETRY, Kind.REJECTED) or not changes:
        return
    what = f"HTTP {call.status_code}" if call.status_code is not None else call.error
    ids = [c.delivery_id for c in changes]
    retries = [c.next_attempt_at for c in changes if c.status == PENDING and c.next_attempt_at]
    retry_at = min(retries) if retries else None
    dead = sum(1 for c in changes if c.status == DEAD)
    failed = sum(1 for c in changes if c.status == FAILED)
    shown = ", ".join(map(str, ids[:SAMPLE_IDS])) + (", ..." if len(ids) > SAMPLE_IDS else "")
    then = (
        [f"{len(retries)} retry from {retry_at.isoformat(timespec='seconds')}"] if retry_at else []
    )
    then += [f"{failed} failed"] if failed else []
    then += [f"{dead} dead (RETRY_SCHEDULE used up)"] if dead else []
    logger.warning(
        "Braze request failed (%s): %d deliveries (%s): %s", what, len(ids), shown,
        ", ".join(then) or "nothing changed", extra={
            "braze_status": call.status_code, "braze_error": call.error, "deliveries": len(ids),
            "delivery_ids": ids[:SAMPLE_IDS], "retry_at": retry_at, "dead": dead,
        },
    )  # fmt: skip


def log_given_up(delivery_id: int, distribution_id: uuid.UUID | None, status: str) -> None:
    """One WARNING for a delivery that failed (will not be retried) or went dead."""
    how = "went dead (its retries are used up)" if status == DEAD else "failed"
    logger.warning(
        "delivery %d of distribution %s %s; GET /api/v1/deliveries/%d says why",
        delivery_id, distribution_id, how, delivery_id,
        extra={"delivery_id": delivery_id, "distribution_id": str(distribution_id),
               "outcome": status},
    )  # fmt: skip


async def log_given_up_changes(pool: asyncpg.Pool, changes: Sequence[DeliveryChange]) -> None:
    """`log_given_up` for each failed or dead change, with its distribution (one query, only
    when there is one: never on the happy path)."""
    ended = [c for c in changes if c.status in (FAILED, DEAD)]
    if not ended:
        return
    distributions: dict[int, uuid.UUID] = {}
    try:
        rows = await pool.fetch(_DISTRIBUTIONS, [c.delivery_id for c in ended])
        distributions = {r["id"]: r["distribution_id"] for r in rows}
    except Exception as exc:  # the outcome is recorded: the lines go out without distributions
        logger.warning("could not look up the distributions of failed deliveries: %s", exc)
    for change in ended:
        log_given_up(change.delivery_id, distributions.get(change.delivery_id), change.status)
