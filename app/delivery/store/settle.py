"""Recording a Braze answer, one statement per thing it writes: the request, each delivery's
new state with its attempt row, the deliveries refused together and sent again alone, and the
attribute state of what Braze accepted. DeliveryQueue.record runs them in one transaction.

Each change lands only while this worker still holds the delivery's lease."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from app.braze.client import BrazeCallResult
from app.delivery.coalesce import UserUpdate
from app.delivery.outcomes import DeliveryChange

_REQUEST = """
INSERT INTO braze_requests (started_at, duration_ms, status_code, kind, objects, request_bytes,
    response_body, response_headers, error, worker)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10)
RETURNING id
"""
# Each change lands only while this worker still holds the delivery's lease. A lease that
# expired mid-request (another worker took the delivery) keeps the delivery as that worker left
# it, but a request Braze answered is still recorded as an attempt: Braze may have applied it.
_APPLY = """
WITH change AS (
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
                         $6::bool[], $7::text[], $8::text[])
        AS c(id, status, outcome, message, next_attempt_at, counts, skip_reason, omitted)
),
updated AS (
    UPDATE deliveries AS d SET
        status = c.status,
        attempts = d.attempts + CASE WHEN c.counts THEN 1 ELSE 0 END,
        next_attempt_at = coalesce(c.next_attempt_at, d.next_attempt_at),
        last_error = CASE WHEN c.status IN ('delivered') THEN NULL
                          ELSE coalesce(c.message, d.last_error) END,
        skip_reason = coalesce(c.skip_reason, d.skip_reason),
        delivered_at = CASE WHEN c.status = 'delivered' THEN clock_timestamp()
                            ELSE d.delivered_at END,
        force = CASE WHEN c.status = 'pending' THEN d.force ELSE false END,
        lease_expires_at = NULL, leased_by = NULL, updated_at = clock_timestamp()
    FROM change AS c
    WHERE d.id = c.id AND d.status = 'in_flight' AND d.leased_by = $9
    RETURNING d.id, d.replay_id
),
attempted AS (
    INSERT INTO delivery_attempts (delivery_id, braze_request_id, outcome, message, omitted,
        replay_id)
    SELECT c.id, $10, c.outcome,
           CASE WHEN updated.id IS NULL THEN concat_ws(' ', c.message, $11::text)
                ELSE c.message END,
           c.omitted::jsonb, coalesce(updated.replay_id, d.replay_id)
    FROM change AS c
    JOIN deliveries AS d ON d.id = c.id
    LEFT JOIN updated ON updated.id = c.id
    WHERE updated.id IS NOT NULL OR $10::bigint IS NOT NULL
    RETURNING 1
)
SELECT id FROM updated
"""
ALONE = "refused with other deliveries' values in one object: sent again alone"
LEASE_LOST = "(recorded after the lease expired: another worker had taken the delivery)"
# Newer events win even if two writes race: the state never goes back in time, and a value
# without an event time keeps the time recorded. A value Braze just accepted (`sent`) is the
# last write it saw: no doubt is left about it, and it is trusted from now on. A value left out
# as unchanged (`confirmed`) only moves the time on.
_REMEMBER = """
INSERT INTO attribute_state AS s (braze_user_key, attribute, value, event_time, delivery_id,
    sent_at, updated_at)
SELECT k, a, v::jsonb, t, id, CASE WHEN sent THEN clock_timestamp() END, clock_timestamp()
FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::bigint[], $6::bool[])
    AS u(k, a, v, t, id, sent)
ON CONFLICT (braze_user_key, attribute) DO UPDATE SET
    value = excluded.value, event_time = coalesce(excluded.event_time, s.event_time),
    delivery_id = excluded.delivery_id, updated_at = excluded.updated_at,
    sent_at = coalesce(excluded.sent_at, s.sent_at),
    uncertain = s.uncertain AND excluded.sent_at IS NULL,
    doubt_event_time = CASE WHEN excluded.sent_at IS NULL THEN s.doubt_event_time END
WHERE s.event_time IS NULL OR excluded.event_time IS NULL OR excluded.event_time >= s.event_time
"""
_SPLIT_ATTEMPTS = """
INSERT INTO delivery_attempts (delivery_id, braze_request_id, outcome, message)
SELECT id, $2, 'split', $3 FROM unnest($1::bigint[]) AS id
"""


async def insert_request(
    connection: asyncpg.Connection, call: BrazeCallResult, started_at: datetime, *,
    worker_id: str,
) -> int:  # fmt: skip
    """The audit row of one /users/track request; its id."""
    request_id: int = await connection.fetchval(
        _REQUEST, started_at, call.duration.total_seconds() * 1000, call.status_code,
        str(call.kind), call.object_count, call.request_bytes, call.body or None,
        json.dumps(call.headers), call.error, worker_id,
    )  # fmt: skip
    return request_id


async def apply(
    connection: asyncpg.Connection, changes: Sequence[DeliveryChange], *,
    skip_reasons: dict[int, str], omitted: dict[int, dict[str, list[str]]], worker_id: str,
    request_id: int | None,
) -> set[int]:  # fmt: skip
    """Each delivery's new state (while `worker_id` holds its lease) and its attempt row; the
    ids whose state changed."""
    applied = await connection.fetch(
        _APPLY,
        [c.delivery_id for c in changes],
        [c.status for c in changes],
        [c.outcome for c in changes],
        [c.message for c in changes],
        [c.next_attempt_at for c in changes],
        [c.counts_as_attempt for c in changes],
        [skip_reasons.get(c.delivery_id) for c in changes],
        [json.dumps(omitted[c.delivery_id]) if c.delivery_id in omitted else None
         for c in changes],
        worker_id,
        request_id,
        LEASE_LOST,
    )  # fmt: skip
    return {row["id"] for row in applied}


async def note_split(
    connection: asyncpg.Connection, delivery_ids: Sequence[int], request_id: int, message: str
) -> None:
    """A `split` attempt for each delivery: its request is sent again in parts."""
    await connection.execute(_SPLIT_ATTEMPTS, list(delivery_ids), request_id, message)


async def remember(
    connection: asyncpg.Connection,
    accepted_rows: list[tuple[str, str, str, datetime | None, int, bool]],
    confirmed: Sequence[tuple[str, str, Any, datetime | None, int]],
) -> None:
    """The attribute state of the values Braze accepted and of those a newer event confirmed."""
    rows = [*accepted_rows, *((k, a, json.dumps(v), t, i, False) for k, a, v, t, i in confirmed)]
    if rows:
        await connection.execute(_REMEMBER, *(list(c) for c in zip(*rows, strict=True)))


def accepted(
    updates: Sequence[UserUpdate], delivered: set[int]
) -> list[tuple[str, str, str, datetime | None, int, bool]]:
    """attribute_state rows of the values Braze accepted."""
    return [
        (update.braze_user_key, attribute, json.dumps(update.object[attribute]), event_time,
         delivery_id, True)
        for update in updates
        for attribute, (event_time, delivery_id) in update.sources.items()
        if delivery_id in delivered
    ]  # fmt: skip
