"""What a classified Braze answer does to each delivery in the request: a pure function."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.braze.classify import Classification, Kind
from app.delivery.coalesce import UserUpdate
from app.delivery.models import DEAD, DELIVERED, FAILED, PENDING
from app.retry import jitter_factor, retry_delay


@dataclass(frozen=True)
class DeliveryChange:
    delivery_id: int
    status: str
    # What the delivery_attempts row says: delivered, failed, retry, dead, rate_limited, blocked.
    outcome: str
    message: str | None = None
    next_attempt_at: datetime | None = None
    # A 429 or a blocked key is not the delivery's fault and does not use up a retry.
    counts_as_attempt: bool = True


def settle(
    *,
    classification: Classification,
    updates: Sequence[UserUpdate],
    attempts: Mapping[int, int],
    now: datetime,
    schedule: Sequence[timedelta],
    jitter: float = 0.1,
    rng: random.Random | None = None,
) -> list[DeliveryChange]:
    """One change per delivery carried by the request (updates[i] is object i)."""
    changes: list[DeliveryChange] = []
    kind = classification.kind
    # One draw per request: jittering each delivery would scatter a batch that failed together
    # over several later requests (the jitter is there to spread separate requests apart).
    factor = jitter_factor(jitter, rng)
    for index, update in enumerate(updates):
        failed = classification.failed.get(index)
        for delivery_id in update.delivery_ids:
            if kind is Kind.DELIVERED:
                changes.append(
                    DeliveryChange(delivery_id, FAILED, "failed", failed)
                    if failed is not None
                    else DeliveryChange(delivery_id, DELIVERED, "delivered")
                )
            elif kind in (Kind.REJECTED, Kind.SPLIT) and failed is not None:
                changes.append(DeliveryChange(delivery_id, FAILED, "failed", failed))
            elif kind in (Kind.REJECTED, Kind.SPLIT):
                # Not processed because of the others: send again at once, no attempt used.
                changes.append(
                    DeliveryChange(delivery_id, PENDING, "retry", "sent again without the "
                                   "objects Braze refused", now, counts_as_attempt=False)
                )  # fmt: skip
            elif kind is Kind.RATE_LIMITED:
                wait = classification.retry_after or timedelta(seconds=3)
                changes.append(
                    DeliveryChange(delivery_id, PENDING, "rate_limited", classification.message,
                                   now + wait, counts_as_attempt=False)
                )  # fmt: skip
            elif kind is Kind.CONFIG_ERROR:
                changes.append(
                    DeliveryChange(delivery_id, PENDING, "blocked", classification.message,
                                   now, counts_as_attempt=False)
                )  # fmt: skip
            else:  # Kind.RETRY: 5xx, timeout, connection error
                attempt = attempts.get(delivery_id, 0) + 1
                delay = retry_delay(attempt=attempt, schedule=schedule, factor=factor)
                if delay is not None and classification.retry_after is not None:
                    # A 5xx with Retry-After: not before Braze says it can take it.
                    delay = max(delay, classification.retry_after)
                changes.append(
                    DeliveryChange(delivery_id, DEAD, "dead", classification.message)
                    if delay is None
                    else DeliveryChange(
                        delivery_id, PENDING, "retry", classification.message, now + delay
                    )
                )
    return changes


def put_back(change: DeliveryChange, retry_probe: Mapping[int, datetime]) -> DeliveryChange:
    """A failed outage probe uses no try: the probed delivery waits for the retry it had."""
    was = retry_probe.get(change.delivery_id)
    if was is None or change.status not in (PENDING, DEAD):
        return change
    message = f"{change.message} (an outage probe: no try used)"
    return DeliveryChange(change.delivery_id, PENDING, "retry", message, was, False)
