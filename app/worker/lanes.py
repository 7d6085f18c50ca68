"""The lanes of a worker process that need no Braze: they fill and tend the delivery queue.

- publisher: publishes codes and looks up customers for deliveries that wait for Voucherify;
- runs: pages due manual runs into deliveries (Voucherify);
- replays: runs queued bulk replays (Postgres only);
- retention: prunes audit rows older than RETENTION_DAYS (Postgres only);
- tending: carries on the batched queue changes of pauses, resumes and deletes and the batched
  withdrawals of canceled replays and runs that their API did not finish
  (`queue_change.continue_changes`, `withdrawal.continue_withdrawals`), then holds, skips or
  withdraws what paused or deleted distributions and canceled replays and runs still have
  waiting (`hold.tend`, Postgres only).

Each runs when what it needs is configured, also before Braze is connected: the deliveries they
make ready then wait in the queue for the Braze lanes (`worker.py`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from app.delivery.failures import FailureStreak, poll_until_stopped
from app.delivery.store.hold import TEND_SECONDS, tend
from app.delivery.store.queue_change import continue_changes
from app.delivery.store.retention import prune
from app.delivery.store.withdrawal import continue_withdrawals
from app.ops.bulk_replay import ReplayRunner
from app.runs.executor import RunExecutor
from app.worker.publisher import Publisher

logger = logging.getLogger(__name__)


@dataclass
class QueueLanes:
    pool: asyncpg.Pool
    # Set when deliveries became ready to send: the Braze lanes stop idling at once.
    wake: asyncio.Event
    poll_seconds: float = 0.5
    # Without Voucherify API keys: None (those deliveries and runs wait).
    publisher: Publisher | None = None
    runs: RunExecutor | None = None
    replays: ReplayRunner | None = None
    # Prune audit rows older than this, every `retention_every` (None: never).
    retention: timedelta | None = None
    retention_every: timedelta = timedelta(minutes=10)

    async def run(self, stop: asyncio.Event) -> None:
        """Run every configured lane until `stop` is set."""
        lanes = []
        if self.publisher is not None:
            lanes.append(self._publisher_lane(self.publisher, stop))
        if self.runs is not None:
            lanes.append(self.runs.run(stop, poll_seconds=self.poll_seconds))
        if self.replays is not None:
            lanes.append(self.replays.lane(stop, wake=self.wake))
        if self.retention is not None:
            lanes.append(self._retention_lane(self.retention, stop))
        lanes.append(self._tending_lane(stop))
        await asyncio.gather(*lanes)

    async def _tending_lane(self, stop: asyncio.Event) -> None:
        async def tend_once() -> bool:
            await continue_changes(self.pool)
            await continue_withdrawals(self.pool)
            held, dropped, withdrawn = await tend(self.pool)
            if held or dropped or withdrawn:
                logger.info(
                    "queue sweep: %d deliveries of paused distributions held, %d of deleted "
                    "ones skipped, %d of canceled replays and runs withdrawn", held, dropped,
                    withdrawn,
                )  # fmt: skip
            return False  # never again at once: every TEND_SECONDS

        every = TEND_SECONDS
        streak = FailureStreak(logger, "queue sweep", first_wait=every, longest=every)
        await poll_until_stopped(
            stop, tend_once, streak=streak, idle_wait=every, consequence="it runs again later"
        )

    async def _publisher_lane(self, publisher: Publisher, stop: asyncio.Event) -> None:
        async def publish() -> bool:
            if completed := await publisher.cycle():
                self.wake.set()  # the completed deliveries are ready for Braze
            return bool(completed)

        streak = FailureStreak(logger, "publishing", first_wait=self.poll_seconds)
        await poll_until_stopped(
            stop, publish, streak=streak, idle_wait=self.poll_seconds,
            consequence="the leases expire and are taken again",
        )  # fmt: skip

    async def _retention_lane(self, older_than: timedelta, stop: asyncio.Event) -> None:
        async def prune_once() -> bool:
            await prune(self.pool, older_than=older_than)
            return False  # never again at once: every `retention_every`

        every = self.retention_every.total_seconds()
        # Its wait is long already: the streak only keeps the traceback to one per outage.
        streak = FailureStreak(logger, "retention pruning", first_wait=every, longest=every)
        await poll_until_stopped(
            stop, prune_once, streak=streak, idle_wait=every, consequence="it runs again later"
        )
