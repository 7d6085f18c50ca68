"""The worker cycle, top to bottom: claim -> coalesce -> batch -> send -> classify -> record.

A worker runs `concurrency` lanes; each lane claims the due deliveries of up to `batch_size`
Braze users, coalesces them into one object per user, sends them in requests of at most 75
objects and 4 MB through the shared gate (budget, pauses, blocks), and records what became of
every delivery. Lanes coordinate with other lanes and other processes only through Postgres.
What an answer means for every sender is in answers.py, what becomes of each delivery in
outcomes.py, and the recording (while the lane sends its next batch) in recorder.py. The lanes
that need no Braze (codes, runs, replays, retention) are in app/worker/lanes.py.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping
from datetime import UTC, datetime

from app.braze.classify import Kind
from app.braze.client import BrazeCallResult, BrazeClient
from app.braze.payload import MAX_BODY_BYTES, BrazeObject, split_into_batches
from app.delivery import coalesce
from app.delivery.answers import react_to, refused_together
from app.delivery.coalesce import STALE, UNCHANGED
from app.delivery.failures import FailureStreak
from app.delivery.gate import BrazeGate, GateState
from app.delivery.outcomes import put_back, settle
from app.delivery.recorder import Answer, Recorder
from app.delivery.stopping import unless_stopped, wait_unless_stopped
from app.delivery.store.queue import Claimed, DeliveryQueue
from app.delivery.work import Work, WorkerConfig, WorkerStats
from app.metrics.registry import DATA_POINTS_SAVED

logger = logging.getLogger(__name__)


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
        self.recorder = Recorder(queue, self.stats, concurrency=config.concurrency)

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
        await self.recorder.flush()

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
            await self.recorder.record_skipped(plan)
        sendable = plan.updates
        try:
            batches = self._batches(sendable)
        except ValueError:
            # An object no request can carry (several distributions mapping large values for
            # one user): raised, it would hold every user claimed with it in flight, claimed
            # again every lease. It fails alone, saying why; the others go out.
            sendable = await self.recorder.fail_unsendable(sendable)
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
        """One request, top to bottom: the gate, the call, what the answer means for every
        sender, then what becomes of each delivery (split, settle, send again alone)."""
        if not await self._through_gate(updates, probing=probing, claimed_at=claimed_at):
            return
        started_at = datetime.now(UTC)
        call = await self._call(updates)
        await react_to(
            call, gate=self.gate, queue=self.queue, probing=probing,
            low_remaining_fraction=self.config.low_remaining_fraction,
        )  # fmt: skip
        if call.kind is Kind.SPLIT and len(updates) > 1:
            await self._split(call, started_at, updates, omitted, claimed, claimed_at=claimed_at)
            return
        changes = settle(
            classification=call.classification, updates=updates, attempts=claimed.attempts,
            now=datetime.now(UTC), schedule=self.config.schedule, rng=self.rng,
        )  # fmt: skip
        if retry_probe and call.kind is Kind.RETRY:
            changes = [put_back(change, retry_probe) for change in changes]
        together = refused_together(call, updates)
        alone = [i for update in together for i in update.delivery_ids]
        changes = [c for c in changes if c.delivery_id not in alone]
        await self.recorder.start(
            Answer(call, started_at, changes, updates, omitted, claimed, alone)
        )
        for update in together:
            await self._send_alone(update, omitted, claimed, claimed_at=claimed_at)

    async def _through_gate(
        self, updates: list[coalesce.UserUpdate], *, probing: bool, claimed_at: float
    ) -> bool:
        """Wait for the shared gate (budget, pauses, blocks); False when the work went back.

        A send starts within half the lease of the claim, so that the Braze call (its timeout
        is below half the lease, see Settings) ends before the lease does and no other worker
        can take the same users meanwhile. Time spent waiting behind the previous batch
        (pipelining) or at the gate counts."""
        loop = asyncio.get_running_loop()
        budget = self.config.lease.total_seconds() / 2 - (loop.time() - claimed_at)
        try:
            if budget <= 0:
                raise TimeoutError
            await asyncio.wait_for(self.gate.acquire(probing=probing), budget)
        except TimeoutError:
            # Paused, blocked or held up for longer than our lease allows: give the work back.
            await self.queue.release([i for u in updates for i in u.delivery_ids])
            return False
        return True

    async def _call(self, updates: list[coalesce.UserUpdate]) -> BrazeCallResult:
        call = await self.braze.track([u.object for u in updates])
        self.stats.requests += 1
        self.stats.kinds[str(call.kind)] = self.stats.kinds.get(str(call.kind), 0) + 1
        return call

    async def _split(
        self,
        call: BrazeCallResult,
        started_at: datetime,
        updates: list[coalesce.UserUpdate],
        omitted: dict[int, dict[str, list[str]]],
        claimed: Claimed,
        *,
        claimed_at: float,
    ) -> None:
        """Braze refused the request as a whole (too large): audit it, send each half."""
        await self.queue.record_split(
            call=call, started_at=started_at,
            delivery_ids=[i for u in updates for i in u.delivery_ids],
        )  # fmt: skip
        middle = len(updates) // 2
        for half in (updates[:middle], updates[middle:]):
            await self._send(half, omitted, claimed, probing=False, claimed_at=claimed_at)

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
            await self.recorder.record_skipped(coalesce.Plan(skipped=idle, omitted=omitted))
        for part in parts:
            if part.sources:
                await self._send([part], omitted, claimed, probing=False, claimed_at=claimed_at)

    def _batches(self, updates: list[coalesce.UserUpdate]) -> list[list[BrazeObject]]:
        return split_into_batches(
            [u.object for u in updates], max_objects=self.config.batch_size,
            max_bytes=MAX_BODY_BYTES,
        )  # fmt: skip
