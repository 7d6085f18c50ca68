"""The worker cycle, top to bottom: claim -> coalesce -> batch -> send -> classify -> record.

A worker runs `concurrency` lanes; each lane claims the due deliveries of up to `batch_size`
Braze users, coalesces them into one object per user, sends them in requests of at most 75
objects and 4 MB through the shared gate (budget, pauses, blocks), and records what became of
every delivery. Lanes coordinate with other lanes and other processes only through Postgres.
The lanes of the same process that need no Braze (codes, runs, replays, retention) are in
`lanes.py`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from app.braze.classify import Kind
from app.braze.client import BrazeCallResult, BrazeClient
from app.braze.payload import MAX_BODY_BYTES, BrazeObject, split_into_batches, unsendable
from app.delivery import coalesce
from app.delivery.coalesce import STALE, UNCHANGED
from app.delivery.failures import FailureStreak
from app.delivery.gate import BrazeGate, GateState
from app.delivery.models import FAILED, SKIPPED
from app.delivery.outcomes import DeliveryChange, put_back, settle
from app.delivery.reporting import (
    count_settled_changes,
    landed_changes,
    log_failed_request,
    log_given_up_changes,
    observe_latencies,
)
from app.delivery.stopping import unless_stopped, wait_unless_stopped
from app.delivery.store.queue import Claimed, DeliveryQueue
from app.metrics.registry import DATA_POINTS_SAVED
from app.retry import DEFAULT_SCHEDULE

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerConfig:
    batch_size: int = 75
    concurrency: int = 4
    poll_seconds: float = 0.5
    lease: timedelta = timedelta(seconds=120)
    schedule: tuple[timedelta, ...] = DEFAULT_SCHEDULE
    # Pause everyone when Braze says fewer than this share of the window's requests remain.
    low_remaining_fraction: float = 0.05
    # How long a value Braze accepted is trusted to be still there (None: for ever).
    trust: timedelta | None = timedelta(days=7)


@dataclass(frozen=True)
class Work:
    """A claimed batch, coalesced: what one lane sends next."""

    claimed: Claimed
    plan: coalesce.Plan
    probing: bool
    # When the leases were taken (event-loop clock): a prefetched batch waits for the one
    # before it, and must not start a send its lease cannot cover.
    claimed_at: float = field(default_factory=lambda: asyncio.get_running_loop().time())
    # An outage probe: the retry tried early, and the retry time it goes back to if it fails.
    retry_probe: dict[int, datetime] = field(default_factory=dict)

    @property
    def delivery_ids(self) -> list[int]:
        return [d.id for d in self.claimed.deliveries]


@dataclass
class WorkerStats:
    delivered: int = 0
    failed: int = 0
    retried: int = 0
    skipped: int = 0
    requests: int = 0
    data_points_saved: int = 0
    kinds: dict[str, int] = field(default_factory=dict)


class Worker:
    def __init__(
        self,
        *,
        queue: DeliveryQueue,
        braze: BrazeClient,
        gate: BrazeGate,
        config: WorkerConfig,
        wake: asyncio.Event | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.queue = queue
        self.braze = braze
        self.gate = gate
        self.config = config
        self.wake = wake or asyncio.Event()
        self.rng = rng or random.Random()
        self.stats = WorkerStats()
        # Recording a request's outcome runs while the lane sends its next batch; at most one
        # record per lane is outstanding. The deliveries stay leased (in flight) until then.
        self._recording: set[asyncio.Task[None]] = set()
        self._record_slots = asyncio.Semaphore(config.concurrency)

    async def run(self, stop: asyncio.Event) -> None:
        """Run the lanes until `stop` is set; each finishes the batch it is sending."""
        logger.info(
            "worker %s: %d lanes of %d users", self.queue.worker_id, self.config.concurrency,
            self.config.batch_size,
        )  # fmt: skip
        await asyncio.gather(*(self._lane(stop) for _ in range(self.config.concurrency)))
        await self.flush()
        logger.info("worker %s stopped", self.queue.worker_id)

    async def flush(self) -> None:
        """Wait until every outcome sent so far is recorded."""
        while self._recording:
            await asyncio.gather(*self._recording, return_exceptions=True)

    async def _lane(self, stop: asyncio.Event) -> None:
        """Claim the next batch while the current one is on its way to Braze (pipelining)."""
        prefetch: asyncio.Task[Work | None] | None = None
        streak = FailureStreak(logger, "worker cycle", first_wait=self.config.poll_seconds)
        while not stop.is_set():
            try:
                # A claim in progress when the worker stops is canceled (it rolls back).
                work = await unless_stopped(stop, prefetch or self._next_work())
                prefetch = None
                if work is None:
                    streak.succeeded()
                    await self._idle(stop)
                    continue
                if not work.probing:
                    prefetch = asyncio.create_task(self._next_work())
                await self._deliver(work)
                streak.succeeded()
            except Exception as exc:
                wait = streak.failed(exc, "its leases expire and are taken again")
                await wait_unless_stopped(stop, wait)
        if prefetch is not None:
            try:
                leftover = await unless_stopped(stop, prefetch)
                if leftover is not None:
                    await self.queue.release(leftover.delivery_ids)
            except Exception:
                logger.exception("could not give back a prefetched batch; its leases expire")

    async def _idle(self, stop: asyncio.Event) -> None:
        waiters = {asyncio.ensure_future(self.wake.wait()), asyncio.ensure_future(stop.wait())}
        try:
            await asyncio.wait(waiters, timeout=self.config.poll_seconds,
                               return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        finally:
            for waiter in waiters:
                waiter.cancel()
        self.wake.clear()

    async def cycle(self) -> int:
        """One claim, sent and recorded. Returns how many deliveries it settled."""
        work = await self._next_work()
        if work is None:
            return 0
        await self._deliver(work)
        await self.flush()
        return len(work.claimed.deliveries)

    async def _next_work(self) -> Work | None:
        """Claim and coalesce the next batch; None when there is nothing to send now."""
        probing = False
        state = await self.gate.state_cached()
        if state.blocked_reason is not None:
            probing = await self.gate.claim_probe()
            if not probing:
                return None
            logger.info("Braze is blocked (%s): probing with a real batch", state.blocked_reason)
        claimed, known = await self.queue.claim(users=self.config.batch_size)
        if not claimed.deliveries:
            return await self._outage_probe(state) if not probing else None
        return Work(claimed, self._plan(claimed.deliveries, known), probing)

    async def _outage_probe(self, state: GateState) -> Work | None:
        """Nothing is due while Braze fails: one worker at a time tries the earliest retry
        early, so that the outage's end is noticed (and what waits sent) within a probe
        interval. A failed probe uses no try: the delivery goes back to its retry time."""
        if state.failing_since is None or not await self.gate.claim_outage_probe():
            return None
        retry_probe = await self.queue.probe_retry()
        if not retry_probe:
            return None
        claimed, known = await self.queue.claim(users=1)
        if not any(d.id in retry_probe for d in claimed.deliveries):
            # Another user came first, or this one is busy: no probe this time, and the
            # delivery must not go out as an ordinary (counted) try before its retry time.
            await self.queue.put_back(retry_probe)
            if not claimed.deliveries:
                return None
            return Work(claimed, self._plan(claimed.deliveries, known), probing=False)
        logger.info(
            "Braze failing since %s: probing with delivery %s",
            state.failing_since.isoformat(timespec="seconds"), ", ".join(map(str, retry_probe)),
        )  # fmt: skip
        plan = self._plan(claimed.deliveries, known)
        return Work(claimed, plan, probing=False, retry_probe=retry_probe)

    def _plan(
        self,
        deliveries: list[coalesce.DueDelivery],
        known: dict[tuple[str, str], coalesce.KnownValue],
    ) -> coalesce.Plan:
        return coalesce.plan(
            deliveries, known, coalesce.Trust(datetime.now(UTC), self.config.trust)
        )

    async def _deliver(self, work: Work) -> None:
        plan = work.plan
        self.stats.data_points_saved += plan.data_points_saved
        if plan.data_points_saved:
            DATA_POINTS_SAVED.inc(plan.data_points_saved)
        if plan.skipped or plan.confirmed:
            await self._record_skipped(plan)
        sendable = plan.updates
        try:
            batches = self._batches(sendable)
        except ValueError:
            # An object no request can carry (several distributions mapping large values for
            # one user): raised, it would hold every user claimed with it in flight, claimed
            # again every lease. It fails alone, saying why; the others go out.
            sendable = await self._fail_unsendable(sendable)
            batches = self._batches(sendable)
        position, probing = 0, work.probing
        for batch in batches:
            updates = sendable[position : position + len(batch)]
            position += len(batch)
            await self._send(
                updates, plan.omitted, work.claimed, probing=probing,
                claimed_at=work.claimed_at, retry_probe=work.retry_probe,
            )  # fmt: skip
            probing = False

    async def _send(
        self,
        updates: list[coalesce.UserUpdate],
        omitted: dict[int, dict[str, list[str]]],
        claimed: Claimed,
        *,
        probing: bool,
        claimed_at: float,
        retry_probe: Mapping[int, datetime] | None = None,
    ) -> None:
        # A send starts within half the lease of the claim, so that the Braze call (its timeout
        # is below half the lease, see Settings) ends before the lease does and no other worker
        # can take the same users meanwhile. Time spent waiting behind the previous batch
        # (pipelining) or at the gate counts.
        loop = asyncio.get_running_loop()
        budget = self.config.lease.total_seconds() / 2 - (loop.time() - claimed_at)
        try:
            if budget <= 0:
                raise TimeoutError
            await asyncio.wait_for(self.gate.acquire(probing=probing), budget)
        except TimeoutError:
            # Paused, blocked or held up for longer than our lease allows: give the work back.
            await self.queue.release([i for u in updates for i in u.delivery_ids])
            return
        started_at = datetime.now(UTC)
        call = await self.braze.track([u.object for u in updates])
        self.stats.requests += 1
        self.stats.kinds[str(call.kind)] = self.stats.kinds.get(str(call.kind), 0) + 1
        await self._react_to(call, probing=probing)

        if call.kind in (Kind.SPLIT,) and len(updates) > 1:
            await self.queue.record_split(
                call=call, started_at=started_at,
                delivery_ids=[i for u in updates for i in u.delivery_ids],
            )  # fmt: skip
            middle = len(updates) // 2
            for half in (updates[:middle], updates[middle:]):
                await self._send(half, omitted, claimed, probing=False, claimed_at=claimed_at)
            return

        changes = settle(
            classification=call.classification, updates=updates, attempts=claimed.attempts,
            now=datetime.now(UTC), schedule=self.config.schedule, rng=self.rng,
        )  # fmt: skip
        if retry_probe and call.kind is Kind.RETRY:
            changes = [put_back(change, retry_probe) for change in changes]
        together = _refused_together(call, updates)
        alone = [i for update in together for i in update.delivery_ids]
        changes = [c for c in changes if c.delivery_id not in alone]
        self._count(changes)
        await self._record_slots.acquire()
        task = asyncio.create_task(
            self._record(
                call=call, started_at=started_at, changes=changes, updates=updates,
                omitted=omitted, claimed=claimed, alone=alone,
            )
        )  # fmt: skip
        self._recording.add(task)
        task.add_done_callback(self._recorded)
        for update in together:
            await self._send_alone(update, omitted, claimed, claimed_at=claimed_at)

    async def _send_alone(
        self,
        update: coalesce.UserUpdate,
        omitted: dict[int, dict[str, list[str]]],
        claimed: Claimed,
        *,
        claimed_at: float,
    ) -> None:
        """Braze refused an object that carried several deliveries' values (other
        distributions', say): each delivery goes again alone, oldest first, so that only the
        one whose value Braze refuses fails. One left with nothing to send is skipped."""
        parts = coalesce.separate(update, {d.id: d for d in claimed.deliveries})
        idle = {
            p.delivery_ids[0]: STALE if STALE in omitted.get(p.delivery_ids[0], {}) else UNCHANGED
            for p in parts
            if not p.sources
        }
        if idle:
            await self._record_skipped(coalesce.Plan(skipped=idle, omitted=omitted))
        for part in parts:
            if part.sources:
                await self._send([part], omitted, claimed, probing=False, claimed_at=claimed_at)

    async def _record(
        self,
        *,
        call: BrazeCallResult,
        started_at: datetime,
        changes: list[DeliveryChange],
        updates: list[coalesce.UserUpdate],
        omitted: dict[int, dict[str, list[str]]],
        claimed: Claimed,
        alone: list[int],
    ) -> None:
        """Record the answer, then count and log what it settled (once it is recorded)."""
        applied = await self.queue.record(
            call=call, started_at=started_at, changes=changes, updates=updates, omitted=omitted,
            alone=alone,
        )  # fmt: skip
        settled = landed_changes(changes, applied)
        count_settled_changes(settled)
        observe_latencies(settled, claimed.deliveries)
        log_failed_request(call, changes)
        await log_given_up_changes(self.queue.pool, settled)

    def _recorded(self, task: asyncio.Task[None]) -> None:
        self._recording.discard(task)
        self._record_slots.release()
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "recording a Braze answer failed; the leases expire and the deliveries are "
                "sent again", exc_info=task.exception(),
            )  # fmt: skip

    async def _react_to(self, call: BrazeCallResult, *, probing: bool) -> None:
        """What the answer means for everyone sending to this workspace."""
        now = datetime.now(UTC)
        kind = call.kind
        if kind is Kind.CONFIG_ERROR:
            logger.error(
                "Braze refused the configuration (HTTP %s: %s); sending stops, deliveries wait, "
                "probing every %.0f s", call.status_code, call.classification.message,
                self.gate.probe_interval,
            )  # fmt: skip
            await self.gate.block(f"HTTP {call.status_code}: {call.classification.message}")
            return
        if probing and await self.gate.unblock():
            logger.warning("Braze accepts the configuration again: sending resumes")
        if kind is Kind.RETRY:
            await self.gate.failed()
        elif kind is Kind.DELIVERED and (since := await self.gate.answered()) is not None:
            # Without this, what failed during an outage waits for its own next retry: up to
            # hours after Braze is back. The gate's budget paces the catch-up.
            hurried = await self.queue.hurry_retries(failed_since=since)
            logger.warning(
                "Braze answers again after failing since %s: %d deliveries waiting on a retry "
                "are due now", since.isoformat(timespec="seconds"), hurried,
            )  # fmt: skip
        retry_after = call.classification.retry_after
        if kind in (Kind.RATE_LIMITED, Kind.RETRY) and retry_after is not None:
            # 429, or a 5xx with Retry-After: Braze asks every sender to wait.
            logger.warning("Braze answered %s: pausing %s", call.status_code, retry_after)
            await self.gate.pause(until=now + retry_after)
            return
        reading = call.classification.rate_limit
        if (
            reading is not None
            and reading.limit
            and reading.remaining is not None
            and reading.resets_in is not None
            and reading.remaining <= reading.limit * self.config.low_remaining_fraction
        ):
            logger.info("Braze rate limit nearly spent (%d left): pausing", reading.remaining)
            await self.gate.pause(until=now + reading.resets_in)

    async def _record_skipped(self, plan: coalesce.Plan) -> None:
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

    def _batches(self, updates: list[coalesce.UserUpdate]) -> list[list[BrazeObject]]:
        return split_into_batches(
            [u.object for u in updates], max_objects=self.config.batch_size,
            max_bytes=MAX_BODY_BYTES,
        )  # fmt: skip

    async def _fail_unsendable(
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

    def _count(self, changes: list[DeliveryChange]) -> None:
        for change in changes:
            if change.status == "delivered":
                self.stats.delivered += 1
            elif change.status in ("failed", "dead"):
                self.stats.failed += 1
            else:
                self.stats.retried += 1


def _refused_together(
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
