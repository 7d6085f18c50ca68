"""Recording what Braze answered while the lane sends its next batch: at most one record per
lane is outstanding, and the deliveries stay leased (in flight) until it is written. Also the
deliveries settled without a request: skipped (nothing changed) or unsendable."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from app.braze.client import BrazeCallResult
from app.braze.payload import unsendable
from app.delivery import coalesce
from app.delivery.models import FAILED, SKIPPED
from app.delivery.outcomes import DeliveryChange
from app.delivery.reporting import (
    count_settled_changes,
    landed_changes,
    log_failed_request,
    log_given_up_changes,
    observe_latencies,
)
from app.delivery.store.queue import Claimed, DeliveryQueue
from app.delivery.work import WorkerStats

# The worker cycle's own lines, under the logger operators already filter on.
logger = logging.getLogger("app.delivery.worker")


@dataclass(frozen=True)
class Answer:
    """One Braze answer and what it settles: what the recorder writes."""

    call: BrazeCallResult
    started_at: datetime
    changes: list[DeliveryChange]
    updates: list[coalesce.UserUpdate]
    omitted: dict[int, dict[str, list[str]]]
    claimed: Claimed
    # Refused together with other deliveries' values in one object: sent again alone.
    alone: list[int]


class Recorder:
    def __init__(self, queue: DeliveryQueue, stats: WorkerStats, *, concurrency: int) -> None:
        self.queue = queue
        self.stats = stats
        self._recording: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(concurrency)

    async def start(self, answer: Answer) -> None:
        """Write the answer in the background once a slot is free (one per lane)."""
        self.count(answer.changes)
        await self._slots.acquire()
        task = asyncio.create_task(self._write(answer))
        self._recording.add(task)
        task.add_done_callback(self._written)

    async def flush(self) -> None:
        """Wait until every outcome sent so far is recorded."""
        while self._recording:
            await asyncio.gather(*self._recording, return_exceptions=True)

    def _written(self, task: asyncio.Task[None]) -> None:
        self._recording.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "recording a Braze answer failed; the leases expire and the deliveries are "
                "sent again", exc_info=task.exception(),
            )  # fmt: skip

    async def _write(self, answer: Answer) -> None:
        """Record the answer, then count and log what it settled (once it is recorded)."""
        applied = await self.queue.record(
            call=answer.call, started_at=answer.started_at, changes=answer.changes,
            updates=answer.updates, omitted=answer.omitted, alone=answer.alone,
        )  # fmt: skip
        settled = landed_changes(answer.changes, applied)
        count_settled_changes(settled)
        observe_latencies(settled, answer.claimed.deliveries)
        log_failed_request(answer.call, answer.changes)
        await log_given_up_changes(self.queue.pool, settled)

    async def record_skipped(self, plan: coalesce.Plan) -> None:
        changes = [
            DeliveryChange(delivery_id, SKIPPED, "skipped", f"every attribute was {reason}",
                           counts_as_attempt=False)
            for delivery_id, reason in plan.skipped.items()
        ]  # fmt: skip
        self.stats.skipped += len(changes)
        applied = await self.queue.record(
            call=None, started_at=datetime.now(UTC), changes=changes, updates=[],
            omitted=plan.omitted, skip_reasons=plan.skipped, confirmed=plan.confirmed,
        )  # fmt: skip
        count_settled_changes(landed_changes(changes, applied), plan.skipped)

    async def fail_unsendable(
        self, updates: list[coalesce.UserUpdate]
    ) -> list[coalesce.UserUpdate]:
        """Record the updates no request can carry as failed; the others, to send."""
        sendable: list[coalesce.UserUpdate] = []
        changes: list[DeliveryChange] = []
        for update in updates:
            reason = unsendable(update.object)
            if reason is None:
                sendable.append(update)
                continue
            changes += [DeliveryChange(i, FAILED, "failed", f"unsendable: {reason}")
                        for i in update.delivery_ids]  # fmt: skip
        applied = await self.queue.record(
            call=None, started_at=datetime.now(UTC), changes=changes, updates=[], omitted={}
        )
        count_settled_changes(landed_changes(changes, applied))
        return sendable

    def count(self, changes: list[DeliveryChange]) -> None:
        for change in changes:
            if change.status == "delivered":
                self.stats.delivered += 1
            elif change.status in ("failed", "dead"):
                self.stats.failed += 1
            else:
                self.stats.retried += 1
