"""The inbox write path: webhooks are stored with their deliveries, atomically, in batches.

Why it looks like this: this is the hot path (Voucherify waits, and bursts are common) and the
ORM cost milliseconds of CPU per webhook. Concurrent requests hand their event to a few writer
tasks; each writer stores whatever is waiting in ONE statement on a raw asyncpg connection
(a group commit), then answers every request in it. A request is answered only after the
commit that holds its event, so a 2xx still means "stored".

The statement also checks that the distributions matched against (cached in process) are
still current, by a fingerprint of every (id, version) — every change to a distribution bumps
its version. If they are not, it inserts nothing; the writer reloads them and runs it again.

The body is stored once, as the exact bytes received; the envelope's fields (ids, type,
customer, time) are columns. A jsonb copy of the whole body beside it doubled the row past
Postgres' page-sized toast target, and building and compressing it was about half of the
database's CPU per webhook. Readers parse `raw_body` (orjson) when they need the whole body.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
from pydantic import ValidationError
from sqlalchemy.engine import URL

from app.db.nul import without_nul
from app.db.raw import DATA_ERRORS, keep_session
from app.delivery.store import webhook_deliveries
from app.distributions.envelope import Envelope
from app.distributions.schemas import DistributionConfig
from app.errors import DatabaseUnavailableError
from app.webhooks import event_time
from app.webhooks.matching import MatchableDistribution, Outcome, plan_deliveries
from app.webhooks.signature import SignatureResult

logger = logging.getLogger(__name__)

MAX_BATCH = 100

_FINGERPRINT = (
    "SELECT md5(coalesce(string_agg(id::text || ':' || version::text, ',' ORDER BY id), ''))"
    " FROM distributions"
)
_LOAD = """
SELECT id, version, name, description, triggers, filters, code_source, identity, consent,
       mapping, action, update_existing_only, status
FROM distributions WHERE deleted_at IS NULL AND status = 'active'
"""
_STORE = f"""
WITH fresh AS (SELECT ({_FINGERPRINT}) = $1 AS ok),
incoming AS (
    SELECT * FROM unnest(
        $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
        $9::text[], $10::timestamptz[], $11::bytea[], $12::text[], $13::text[],
        $14::int[], $15::text[], $16::text[]
    ) AS i(voucherify_event_id, source_id, source_object, send_out_id, project_id, event_type,
           customer_id, customer_source_id, event_created_at, raw_body,
           signature_result, outcome, deliveries_created, deliveries, time_note)
),
event AS (
    INSERT INTO webhook_events (
        voucherify_event_id, source_id, source_object, send_out_id, project_id, event_type,
        customer_id, customer_source_id, event_created_at, raw_body,
        signature_result, outcome, deliveries_created)
    SELECT voucherify_event_id, source_id, source_object, send_out_id, project_id, event_type,
           customer_id, customer_source_id, event_created_at, raw_body,
           signature_result, outcome, deliveries_created
    FROM incoming, fresh WHERE fresh.ok
    ON CONFLICT (voucherify_event_id, source_id) DO NOTHING
    RETURNING id, voucherify_event_id, source_id, event_created_at
),
created AS (
    {webhook_deliveries.FROM_STORED_EVENTS}
),
-- Rare: an event time replaced (app/webhooks/event_time.py); each delivery's log says so.
noted AS (
    INSERT INTO delivery_attempts (delivery_id, outcome, message)
    SELECT created.id, '{event_time.OUTCOME}', incoming.time_note
    FROM created JOIN event ON event.id = created.event_id
    JOIN incoming USING (voucherify_event_id, source_id)
    WHERE incoming.time_note IS NOT NULL
)
SELECT (SELECT ok FROM fresh) AS fresh, (SELECT count(*) FROM created) AS deliveries,
       event.id, event.voucherify_event_id, event.source_id
FROM (SELECT 1) AS always LEFT JOIN event ON true
"""
# One unique-index probe per webhook of the batch, whatever the statistics say (LATERAL with
# OFFSET 0 cannot be flattened into a join the planner might hash over the whole table).
_EXISTING = """
SELECT e.id, e.outcome, e.voucherify_event_id, e.source_id
FROM unnest($1::text[], $2::text[]) AS k(event_id, source_id)
CROSS JOIN LATERAL (
    SELECT id, outcome, voucherify_event_id, source_id FROM webhook_events
    WHERE voucherify_event_id = k.event_id AND source_id = k.source_id
    OFFSET 0
) AS e
"""

# Errors that mean "the database is not there right now": answer 503 so Voucherify retries.
CONNECTION_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.TooManyConnectionsError,
    # A connection the server cut (fast shutdown) while idle in the pool can fail its next
    # statement with this instead of a connection error (seen by `make soak`).
    asyncpg.exceptions.InternalClientError,
)


@dataclass(frozen=True)
class StoredEvent:
    event_id: int
    duplicate: bool
    outcome: Outcome
    deliveries: int


@dataclass
class _Pending:
    envelope: Envelope
    raw_body: bytes
    signature: SignatureResult
    answer: asyncio.Future[StoredEvent] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    # Its deliveries could not be stored: store the event alone (outcome failed).
    without_deliveries: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return self.envelope.event_id, self.envelope.source_id


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
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._writers: list[asyncio.Task[None]] = []
        self._fingerprint = ""
        self._distributions: list[MatchableDistribution] = []

    async def store(
        self, *, envelope: Envelope, raw_body: bytes, signature: SignatureResult
    ) -> StoredEvent:
        """Store the event and its deliveries (or find it stored before); return after commit."""
        if not self._writers:
            # A fresh context: created inside the first request, the writers would otherwise
            # log that request's id on every line, for every webhook after it.
            self._writers = [
                asyncio.create_task(
                    self._write_forever(), name=f"inbox-writer-{n}", context=contextvars.Context()
                )
                for n in range(self._writer_count)
            ]
        pending = _Pending(envelope, raw_body, signature)
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

    async def _write_alone(self, pending: _Pending) -> None:
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

    async def _write(self, batch: list[_Pending]) -> None:
        first: dict[tuple[str, str], _Pending] = {}
        for pending in batch:
            first.setdefault(pending.key, pending)
        unique = list(first.values())
        pool = await self._get_pool()
        received = datetime.now(UTC)
        times = [self._event_time(p, received) for p in unique]
        async with pool.acquire() as connection:
            for _ in range(3):
                planned = [self._plan(p) for p in unique]
                rows = await connection.fetch(
                    _STORE, self._fingerprint, *_columns(unique, planned, times)
                )
                if not rows[0]["fresh"]:
                    await self._reload(connection)
                    continue
                break
            else:
                raise RuntimeError("distributions kept changing while storing webhooks")
            created = {(r["voucherify_event_id"], r["source_id"]): r["id"] for r in rows if r["id"]}
            missing = [p.key for p in unique if p.key not in created]
            existing = await self._existing(connection, missing)

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
            if not pending.answer.done():
                pending.answer.set_result(answer)
        if self._on_deliveries is not None and any(counts.values()):
            self._on_deliveries()

    def _plan(self, pending: _Pending) -> tuple[Outcome, list[dict[str, Any]]]:
        envelope = pending.envelope
        if pending.without_deliveries:
            return "failed", []
        try:
            deliveries = plan_deliveries(envelope=envelope, distributions=self._distributions)
        except Exception:
            # A mapping bug for one odd body must not fail the batch, nor make Voucherify retry
            # the event for a day: it is stored, to be replayed once the bug is fixed.
            logger.exception(
                "could not map webhook %s: stored without deliveries (outcome failed)",
                envelope.event_id,
            )
            return "failed", []
        outcome: Outcome = (
            "ignored" if not envelope.known_type else "matched" if deliveries else "unmatched"
        )
        return outcome, deliveries

    def _event_time(
        self, pending: _Pending, received: datetime
    ) -> tuple[datetime | None, str | None]:
        envelope = pending.envelope
        at, note = event_time.bounded_event_time(
            envelope.occurred_at, received=received, max_ahead=self._max_event_time_ahead
        )
        if note is not None:
            logger.warning("webhook %s: %s", envelope.event_id, note)
        return at, note

    async def _existing(
        self, connection: asyncpg.Connection, keys: list[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[int, Outcome]]:
        if not keys:
            return {}
        rows = await connection.fetch(_EXISTING, [k[0] for k in keys], [k[1] for k in keys])
        return {(r["voucherify_event_id"], r["source_id"]): (r["id"], r["outcome"]) for r in rows}

    async def _reload(self, connection: asyncpg.Connection) -> None:
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            fingerprint = await connection.fetchval(_FINGERPRINT)
            distributions = list(_matchable(await connection.fetch(_LOAD)))
        # Both at once: a writer planning while this one awaited the load would otherwise pass
        # the freshness check with the old list (seen by `make soak`: events stored unmatched).
        self._fingerprint, self._distributions = fingerprint, distributions
        logger.info("distributions reloaded: %d active", len(self._distributions))

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            url = self._url
            self._pool = await asyncpg.create_pool(
                host=url.query.get("host") or url.host,
                port=url.port,
                user=url.username,
                password=url.password,
                database=url.database,
                min_size=0,
                max_size=self._pool_size,
                timeout=self._connect_timeout,
                init=_init_connection,
                reset=keep_session,
            )
        return self._pool


def _unavailable() -> DatabaseUnavailableError:
    return DatabaseUnavailableError("the database is unavailable; retry later")


def _fail(batch: list[_Pending], error: BaseException, cause: BaseException) -> None:
    error.__cause__ = cause
    for pending in batch:
        if not pending.answer.done():
            pending.answer.set_exception(error)


def _columns(
    batch: list[_Pending],
    planned: list[tuple[Outcome, list[dict[str, Any]]]],
    times: list[tuple[datetime | None, str | None]],
) -> list[list[Any]]:
    """The batch as one array per column, in the order of the statement's unnest()."""
    columns: list[list[Any]] = [[] for _ in range(15)]
    for pending, (outcome, deliveries), (at, note) in zip(batch, planned, times, strict=True):
        envelope = pending.envelope
        values = (
            envelope.event_id, envelope.source_id, envelope.source_object, envelope.send_out_id,
            envelope.project_id, envelope.event_type, envelope.customer_id,
            envelope.customer_source_id, at, pending.raw_body,
            pending.signature, outcome,
            len(deliveries), _jsonb_text(deliveries), note,
        )  # fmt: skip
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    return columns


async def _init_connection(connection: asyncpg.Connection) -> None:
    # jsonb columns come back as Python objects, as they do through SQLAlchemy.
    await connection.set_type_codec("jsonb", encoder=str, decoder=json.loads, schema="pg_catalog")


def _jsonb_text(deliveries: list[dict[str, Any]]) -> str:
    text = orjson.dumps(deliveries).decode()
    # Postgres jsonb refuses the NUL character. The mapping skips identifiers and attributes
    # that hold one; what is left (an error detail quoting the event) is cleaned, rarely.
    return orjson.dumps(without_nul(deliveries)).decode() if "\\u0000" in text else text


def _matchable(rows: Iterable[asyncpg.Record]) -> Iterable[MatchableDistribution]:
    for row in rows:
        fields: dict[str, Any] = dict(row)
        distribution_id: uuid.UUID = fields.pop("id")
        version: int = fields.pop("version")
        try:
            config = DistributionConfig.model_validate(fields)
        except ValidationError as exc:
            # A row this version cannot read (edited by hand, or rules tightened by an upgrade)
            # must not stop intake: Voucherify gives up retrying after a while. Its webhooks are
            # stored without it, to be replayed (POST /api/v1/events/{id}/replay) once fixed.
            logger.error(
                "distribution %s (%s) is not valid and matches nothing until it is fixed: %s",
                distribution_id, fields.get("name"), exc.errors(include_input=False),
            )  # fmt: skip
            continue
        yield MatchableDistribution(distribution_id, version, config)
