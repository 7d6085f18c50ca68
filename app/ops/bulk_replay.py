"""Background replays (bulk filters, large distribution windows), run by a lane of the worker.

A worker claims one queued replay at a time under a lease (FOR UPDATE SKIP LOCKED: two workers
never run the same one), then works through the WHOLE of it in batches in id order. Each batch
is one transaction that also moves the checkpoint and the counts, so a replay whose worker died
is taken over once its lease expires and resumes after the last committed batch. A cancel is a
status change; the runner reads the status (row-locked) before every batch and stops there.
What earlier batches queued stays queued. A batch that raises is tried again once the lease
expires; after `max_batch_attempts` failed tries of the same batch the replay stops as `failed`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from app.config import Settings
from app.delivery.failures import FailureStreak, poll_until_stopped
from app.delivery.models import Delivery
from app.distributions.models import Distribution
from app.errors import short_error
from app.ops import replay_scope
from app.ops.models import DONE, FAILED, RUNNING, Replay
from app.ops.replay_schemas import BulkFilter
from app.ops.requeue import Tally, rerun
from app.webhooks.models import WebhookEvent

logger = logging.getLogger(__name__)

_CLAIM = text("""
UPDATE replays SET status = 'running', leased_by = :worker,
    lease_expires_at = clock_timestamp() + :lease * interval '1 second',
    started_at = coalesce(started_at, clock_timestamp())
WHERE id = (
    SELECT id FROM replays
    WHERE status = 'queued' OR (status = 'running' AND lease_expires_at < clock_timestamp())
    ORDER BY requested_at
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING id
""")


async def advance(*, session: AsyncSession, replay: Replay, limit: int) -> int:
    """Replay the next `limit` rows after the checkpoint; returns how many there were."""
    tally = Tally()
    if replay.kind == "bulk":
        deliveries = await replay_scope.delivery_batch(
            session, BulkFilter.model_validate(replay.filter), after=replay.checkpoint,
            last_id=_last_id(replay), limit=limit,
        )  # fmt: skip
        events = await _events(session, [d.event_id for d in deliveries])
        distributions = await _distributions(session, [d.distribution_id for d in deliveries])
        for delivery in deliveries:
            await rerun(
                session=session, replay=replay, event=events.get(delivery.event_id or 0),
                distribution=distributions[delivery.distribution_id], delivery=delivery,
                tally=tally,
            )  # fmt: skip
        ids = [d.id for d in deliveries]
    else:
        scope = replay_scope.DistributionScope.model_validate(replay.filter)
        batch = await replay_scope.event_batch(
            session, scope, after=replay.checkpoint, last_id=_last_id(replay), limit=limit
        )
        distribution = await session.get(Distribution, scope.distribution_id)
        assert distribution is not None  # distributions are only soft-deleted
        existing = await _deliveries_of(session, scope.distribution_id, [e.id for e in batch])
        for event in batch:
            await rerun(
                session=session, replay=replay, event=event, distribution=distribution,
                delivery=existing.get(event.id), tally=tally,
            )  # fmt: skip
        ids = [e.id for e in batch]
    tally.add_to(replay)
    if ids:
        replay.checkpoint = ids[-1]
    await session.flush()
    return len(ids)


def _last_id(replay: Replay) -> int:
    assert replay.last_id is not None, "distribution and bulk replays fix last_id when asked"
    return replay.last_id


async def _events(session: AsyncSession, ids: Sequence[int | None]) -> dict[int, WebhookEvent]:
    wanted = {i for i in ids if i is not None}
    query = select(WebhookEvent).where(WebhookEvent.id.in_(wanted))
    return {e.id: e for e in (await session.execute(query)).scalars().all()} if wanted else {}


async def _distributions(
    session: AsyncSession, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Distribution]:
    query = select(Distribution).where(Distribution.id.in_(set(ids)))
    return {d.id: d for d in (await session.execute(query)).scalars().all()} if ids else {}


async def _deliveries_of(
    session: AsyncSession, distribution_id: uuid.UUID, event_ids: list[int]
) -> dict[int, Delivery]:
    """The delivery of each (event, distribution) pair, locked; the newest if there are two."""
    query = (
        select(Delivery)
        .where(Delivery.distribution_id == distribution_id, Delivery.event_id.in_(event_ids))
        .order_by(Delivery.id)
        .with_for_update()
    )
    found: dict[int, Delivery] = {}
    for delivery in (await session.execute(query)).scalars().all():
        assert delivery.event_id is not None
        found[delivery.event_id] = delivery
    return found


BatchHook = Callable[[uuid.UUID], Awaitable[None]]


class ReplayRunner:
    """Claims queued replays and runs them; `lane` is what the worker runs next to its others."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        worker_id: str,
        batch_size: int,
        lease: timedelta,
        poll_seconds: float,
        max_batch_attempts: int = 5,
        after_batch: BatchHook | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.worker_id = worker_id
        self.batch_size = batch_size
        self.lease = lease
        self.poll_seconds = poll_seconds
        self.max_batch_attempts = max_batch_attempts
        # Called after each committed batch (tests cancel there, deterministically).
        self.after_batch = after_batch
        # Set after each batch: the worker's delivery lanes send what it queued at once.
        self.wake: asyncio.Event | None = None

    async def claim(self) -> uuid.UUID | None:
        """Lease the oldest queued replay, or one whose worker's lease expired."""
        async with self.sessionmaker() as session, session.begin():
            claimed = await session.execute(
                _CLAIM, {"worker": self.worker_id, "lease": self.lease.total_seconds()}
            )
            return claimed.scalar_one_or_none()

    async def run_batch(self, replay_id: uuid.UUID) -> bool:
        """One batch in one transaction; False when the replay is finished, canceled or lost."""
        async with self.sessionmaker() as session, session.begin():
            replay = await session.get(Replay, replay_id, with_for_update=True)
            if replay is None or replay.status != RUNNING or replay.leased_by != self.worker_id:
                return False
            done = await advance(session=session, replay=replay, limit=self.batch_size)
            replay.batch_attempts = 0
            now = datetime.now(UTC)
            finished = done < self.batch_size
            if finished:
                replay.status, replay.finished_at = DONE, now
                replay.leased_by = replay.lease_expires_at = None
            else:
                replay.lease_expires_at = now + self.lease
            counts = (replay.kind, replay.matched, replay.queued, dict(replay.skipped))
        if finished:
            kind, matched, queued, skipped = counts
            logger.info(
                "replay %s (%s) is done: %d matched, %d queued, %d skipped %s", replay_id,
                kind, matched, queued, sum(skipped.values()), skipped,
                extra={"replay_id": str(replay_id), "matched": matched, "queued": queued,
                       "skipped": skipped},
            )  # fmt: skip
        if self.wake is not None:
            self.wake.set()
        if self.after_batch is not None:
            await self.after_batch(replay_id)
        return not finished

    async def run(self, replay_id: uuid.UUID) -> None:
        """Batches until the replay is done or canceled. A failure is recorded on the replay;
        the lease then expires and a worker takes it up again from its checkpoint, unless that
        batch has now failed `max_batch_attempts` times: then the replay is `failed`."""
        try:
            while await self.run_batch(replay_id):
                pass
        except Exception as exc:
            logger.exception("replay %s: a batch failed", replay_id)
            await self._batch_failed(replay_id, short_error(exc)[:2000])

    async def _batch_failed(self, replay_id: uuid.UUID, error: str) -> None:
        async with self.sessionmaker() as session, session.begin():
            replay = await session.get(
                Replay, replay_id, with_for_update=True, populate_existing=True
            )
            if replay is None or replay.status != RUNNING or replay.leased_by != self.worker_id:
                return  # canceled meanwhile, or another worker has it
            replay.batch_attempts += 1
            tries, bound = replay.batch_attempts, self.max_batch_attempts
            where = f"the batch after id {replay.checkpoint}"
            if tries < bound:
                replay.last_error = (
                    f"{where} failed ({tries} of {bound} tries, REPLAY_MAX_BATCH_ATTEMPTS; tried "
                    f"again when the lease runs out): {error}"
                )
                return
            logger.error("replay %s: %s failed %d times; the replay stops", replay_id, where, tries)
            replay.last_error = (
                f"{where} failed {tries} times in a row (REPLAY_MAX_BATCH_ATTEMPTS): the replay "
                f"stopped; what earlier batches queued stays queued. Last error: {error}"
            )
            replay.status, replay.finished_at = FAILED, datetime.now(UTC)
            replay.leased_by = replay.lease_expires_at = None

    async def lane(self, stop: asyncio.Event, *, wake: asyncio.Event | None = None) -> None:
        """Run queued replays one after the other until `stop` is set."""
        self.wake = wake

        async def next_replay() -> bool:
            replay_id = await self.claim()
            if replay_id is None:
                return False
            logger.info("replay %s: running", replay_id)
            await self.run(replay_id)
            return True

        streak = FailureStreak(logger, "replay lane", first_wait=self.poll_seconds)
        await poll_until_stopped(
            stop,
            next_replay,
            streak=streak,
            idle_wait=self.poll_seconds,
            consequence="trying again later",
        )


class ReplayLane:
    """The replay runner of a worker process, with its own small SQLAlchemy engine."""

    def __init__(self, settings: Settings, url: URL, *, worker_id: str) -> None:
        self._engine = create_async_engine(url, pool_size=2, max_overflow=0, pool_pre_ping=True)
        self.runner = ReplayRunner(
            async_sessionmaker(self._engine, expire_on_commit=False),
            worker_id=worker_id,
            batch_size=settings.replay_batch_size,
            lease=timedelta(seconds=settings.delivery_lease_seconds),
            poll_seconds=settings.replay_poll_seconds,
            max_batch_attempts=settings.replay_max_batch_attempts,
        )

    async def aclose(self) -> None:
        await self._engine.dispose()
