"""The inbox write path: webhooks are stored with their deliveries, atomically, in batches.

Why it looks like this: this is the hot path (Voucherify waits, and bursts are common) and the
ORM cost milliseconds of CPU per webhook. Concurrent requests hand their event to a few writer
tasks; each writer stores whatever is waiting in ONE statement on a raw asyncpg connection
(a group commit), then answers every request in it. A request is answered only after the
commit that holds its event, so a 2xx still means "stored".

The statement (group_commit.py) also checks that the distributions matched against
(distribution_cache.py) are still current; if not, it stores nothing, and the writer reloads
them and runs it again. A write that fails is tried again here: once on a new connection when
the database went away, then one webhook at a time so that one bad event fails none of the
others, and an event whose deliveries Postgres refuses is stored alone.

The body is stored once, as the exact bytes received. A jsonb copy of the whole body beside it
doubled the row past Postgres' page-sized toast target, and building and compressing it was
about half of the database's CPU per webhook. Readers parse `raw_body` (orjson) when they need
the whole body.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg
from sqlalchemy.engine import URL

from app.db.raw import DATA_ERRORS
from app.distributions.envelope import Envelope
from app.errors import DatabaseUnavailableError
from app.webhooks import event_time, group_commit
from app.webhooks.distribution_cache import DistributionCache
from app.webhooks.group_commit import Pending, StoredEvent
from app.webhooks.inbox_pool import CONNECTION_ERRORS, create_pool
from app.webhooks.recent_events import RecentEvents
from app.webhooks.signature import SignatureResult

logger = logging.getLogger(__name__)

MAX_BATCH = 100


class Inbox:
    """Owns an asyncpg pool, the writer tasks and the in-process cache of active distributions."""

    def __init__(
        self,
        url: URL,
        *,
        pool_size: int,
        connect_timeout: float,
        writers: int = 4,
        max_event_time_ahead: timedelta = timedelta(days=1),
        on_deliveries: Callable[[], None] | None = None,
    ) -> None:
        self._url = url
        self._max_event_time_ahead = max_event_time_ahead
        # Called after a commit that created deliveries: wakes `serve`'s worker at once.
        self._on_deliveries = on_deliveries
        self._pool_size = max(pool_size, writers)
        self._connect_timeout = connect_timeout
        self._writer_count = writers
        self._pool: asyncpg.Pool | None = None
        self._queue: asyncio.Queue[Pending] = asyncio.Queue()
        self._writers: list[asyncio.Task[None]] = []
        self._cache = DistributionCache()
        self._recent = RecentEvents()

    async def store(
        self, *, envelope: Envelope, raw_body: bytes, signature: SignatureResult
    ) -> StoredEvent:
        """Store the event and its deliveries (or find it stored before); return after commit."""
        known = self._recent.duplicate((envelope.event_id, envelope.source_id))
        if known is not None:
            return known
        if not self._writers:
            # A fresh context: created inside the first request, the writers would otherwise
            # log that request's id on every line, for every webhook after it.
            self._writers = [
                asyncio.create_task(
                    self._write_forever(), name=f"inbox-writer-{n}", context=contextvars.Context()
                )
                for n in range(self._writer_count)
            ]
        pending = Pending(envelope, raw_body, signature)
        await self._queue.put(pending)
        return await pending.answer

    async def close(self) -> None:
        for task in self._writers:
            task.cancel()
        for task in self._writers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._writers = []
        if self._pool is not None:
            await self._pool.close()

    async def _write_forever(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._write(batch)
            except CONNECTION_ERRORS as exc:
                # A pooled connection may predate a database restart: one more try on a new one.
                logger.warning("inbox write failed (%s); retrying once", type(exc).__name__)
                try:
                    await self._write(batch)
                except CONNECTION_ERRORS as again:
                    _fail(batch, _unavailable(), again)
            except Exception:
                # One bad event must not fail the others: store them one by one.
                for pending in batch:
                    await self._write_alone(pending)

    async def _write_alone(self, pending: Pending) -> None:
        try:
            await self._write([pending])
        except CONNECTION_ERRORS as exc:
            # The database went away meanwhile: 503, so that Voucherify retries.
            _fail([pending], _unavailable(), exc)
        except Exception as exc:
            if isinstance(exc, DATA_ERRORS) and not pending.without_deliveries:
                # Its deliveries hold what Postgres cannot take. A 5xx would be retried for a
                # day (then Voucherify pauses the webhook), failing every time: keep the event.
                logger.exception(
                    "could not store the deliveries of webhook %s: storing the event alone "
                    "(outcome failed); replay it once fixed", pending.envelope.event_id,
                )  # fmt: skip
                pending.without_deliveries = True
                await self._write_alone(pending)
                return
            logger.exception("could not store webhook %s", pending.envelope.event_id)
            _fail([pending], exc, exc)

    async def _write(self, batch: list[Pending]) -> None:
        first: dict[tuple[str, str], Pending] = {}
        for pending in batch:
            first.setdefault(pending.key, pending)
        unique = list(first.values())
        pool = await self._get_pool()
        received = datetime.now(UTC)
        times = [self._event_time(p, received) for p in unique]
        async with pool.acquire() as connection:
            for _ in range(3):
                planned = [
                    self._cache.plan(p.envelope, without_deliveries=p.without_deliveries)
                    for p in unique
                ]
                rows = await group_commit.store(
                    connection, self._cache.fingerprint, unique, planned, times
                )
                if not rows[0]["fresh"]:
                    await self._cache.reload(connection)
                    continue
                break
            else:
                raise RuntimeError("distributions kept changing while storing webhooks")
            created = {(r["voucherify_event_id"], r["source_id"]): r["id"] for r in rows if r["id"]}
            missing = [p.key for p in unique if p.key not in created]
            existing = await group_commit.existing(connection, missing)

        outcomes = {p.key: plan[0] for p, plan in zip(unique, planned, strict=True)}
        counts = {p.key: len(plan[1]) for p, plan in zip(unique, planned, strict=True)}
        for pending in batch:
            key = pending.key
            if key in created and pending is first[key]:
                answer = StoredEvent(created[key], False, outcomes[key], counts[key])
            elif key in created:  # the same event twice in one batch: the first one stored it
                answer = StoredEvent(created[key], True, outcomes[key], 0)
            else:
                event_id, outcome = existing[key]
                answer = StoredEvent(event_id, True, outcome, 0)
            self._recent.remember(key, answer.event_id, answer.outcome)
            if not pending.answer.done():
                pending.answer.set_result(answer)
        if self._on_deliveries is not None and any(counts.values()):
            self._on_deliveries()

    def _event_time(
        self, pending: Pending, received: datetime
    ) -> tuple[datetime | None, str | None]:
        envelope = pending.envelope
        at, note = event_time.bounded_event_time(
            envelope.occurred_at, received=received, max_ahead=self._max_event_time_ahead
        )
        if note is not None:
            logger.warning("webhook %s: %s", envelope.event_id, note)
        return at, note

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            self._pool = await create_pool(
                self._url, size=self._pool_size, connect_timeout=self._connect_timeout
            )
        return self._pool


def _unavailable() -> DatabaseUnavailableError:
    return DatabaseUnavailableError("the database is unavailable; retry later")


def _fail(batch: list[Pending], error: BaseException, cause: BaseException) -> None:
    error.__cause__ = cause
    for pending in batch:
        if not pending.answer.done():
            pending.answer.set_exception(error)
