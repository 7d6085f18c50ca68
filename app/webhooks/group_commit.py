"""The inbox's one statement per batch (a group commit): every webhook of the batch, stored
with its deliveries and the event-time notes, if the distributions it was matched against are
still current; and the lookup of the events stored before (duplicates).

The body is stored once, as the exact bytes received; the envelope's fields (ids, type,
customer, time) are columns."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from app.db.nul import without_nul
from app.delivery.store import webhook_deliveries
from app.distributions.envelope import Envelope
from app.webhooks.distribution_cache import FINGERPRINT
from app.webhooks.matching import Outcome
from app.webhooks.signature import SignatureResult

_STORE = f"""
WITH fresh AS (SELECT ({FINGERPRINT}) = $1 AS ok),
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
noted AS (
    {webhook_deliveries.EVENT_TIME_NOTES}
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


@dataclass(frozen=True)
class StoredEvent:
    event_id: int
    duplicate: bool
    outcome: Outcome
    deliveries: int


@dataclass
class Pending:
    """A webhook waiting for its writer, and the future its request awaits."""

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


async def store(
    connection: asyncpg.Connection,
    fingerprint: str,
    batch: list[Pending],
    planned: list[tuple[Outcome, list[dict[str, Any]]]],
    times: list[tuple[datetime | None, str | None]],
) -> list[asyncpg.Record]:
    """Store the batch; one row per event stored, or one row with `fresh` false (nothing
    stored) when the distributions changed since `fingerprint`."""
    rows: list[asyncpg.Record] = await connection.fetch(
        _STORE, fingerprint, *_columns(batch, planned, times)
    )
    return rows


async def existing(
    connection: asyncpg.Connection, keys: list[tuple[str, str]]
) -> dict[tuple[str, str], tuple[int, Outcome]]:
    if not keys:
        return {}
    rows = await connection.fetch(_EXISTING, [k[0] for k in keys], [k[1] for k in keys])
    return {(r["voucherify_event_id"], r["source_id"]): (r["id"], r["outcome"]) for r in rows}


def _columns(
    batch: list[Pending],
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


def _jsonb_text(deliveries: list[dict[str, Any]]) -> str:
    text = orjson.dumps(deliveries).decode()
    # Postgres jsonb refuses the NUL character. The mapping skips identifiers and attributes
    # that hold one; what is left (an error detail quoting the event) is cleaned, rarely.
    return orjson.dumps(without_nul(deliveries)).decode() if "\\u0000" in text else text
