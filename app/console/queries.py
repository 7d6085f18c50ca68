"""The console's own reads (the overview, a customer, the distributions' last 24 hours).

Each is bounded whatever the history holds: a time window read through an index, newest
first, and at most SCAN_CAP rows of it (the page says when the cap was reached), so that the
pages stay fast on a database of many millions of events.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.braze.models import BrazeGate
from app.delivery.coalesce import UNCHANGED
from app.delivery.models import Delivery, DeliveryAttempt
from app.webhooks.models import WebhookEvent

SCAN_CAP = 50_000
COUNT_CAP = 500
HOURS_SHOWN = 3
CUSTOMER_ROWS = 50
# The identity types a customer's Braze user key can start with (mapping: `<type>:<value>`).
KEY_TYPES = ("external_id", "email", "braze_id")

_PER_MINUTE_EVENTS = text("""
SELECT date_trunc('minute', received_at) AS minute, count(*) AS n
FROM (SELECT received_at FROM webhook_events WHERE received_at >= :since
      ORDER BY received_at DESC LIMIT :cap) AS newest
GROUP BY 1 ORDER BY 1
""")
_PER_MINUTE_DELIVERED = text("""
SELECT date_trunc('minute', attempted_at) AS minute, count(*) AS n
FROM (SELECT attempted_at, outcome FROM delivery_attempts WHERE attempted_at >= :since
      ORDER BY attempted_at DESC LIMIT :cap) AS newest
WHERE outcome = 'delivered'
GROUP BY 1 ORDER BY 1
""")
# Failures by what went wrong (the outcomes app/delivery/outcomes.py records for a send that
# did not land; replays' own rows are no failures), and the attributes left out because Braze
# had them already.
_LAST_DAY = text(f"""
WITH newest AS (
    SELECT outcome, message, omitted FROM delivery_attempts WHERE attempted_at >= :since
    ORDER BY attempted_at DESC LIMIT :cap
)
SELECT 'failure' AS kind, outcome, left(coalesce(message, ''), 160) AS reason, count(*) AS n
FROM newest WHERE outcome IN ('failed', 'dead', 'retry', 'rate_limited', 'blocked')
GROUP BY 2, 3
UNION ALL
SELECT 'saved', '', '', coalesce(sum(jsonb_array_length(omitted -> '{UNCHANGED}')), 0)
FROM newest WHERE jsonb_typeof(omitted -> '{UNCHANGED}') = 'array'
UNION ALL
SELECT 'scanned', '', '', count(*) FROM newest
""")
_WAITING = text("""
SELECT count(*) AS n, min(next_attempt_at) AS oldest FROM (
    SELECT next_attempt_at FROM deliveries WHERE status = 'pending' AND attributes IS NOT NULL
    UNION ALL
    SELECT next_attempt_at FROM deliveries WHERE status = 'pending' AND attributes IS NULL
    UNION ALL
    SELECT next_attempt_at FROM deliveries
    WHERE status = 'in_flight' AND lease_expires_at IS NOT NULL
) AS waiting
""")
# Per distribution: its deliveries of the last 24 hours by status, at most COUNT_CAP each.
# The window is turned into an id bound first (ids and creation times grow together): each
# distribution then reads its newest COUNT_CAP rows from its (distribution_id, id) index. A
# per-distribution probe on created_at instead walked the whole day's deliveries of every
# distribution (5.5 s a page on the 10-million-event database of the scale benchmark).
_LAST_24H = text("""
WITH bound AS (
    SELECT coalesce(
        (SELECT id FROM deliveries WHERE created_at >= :since ORDER BY created_at LIMIT 1),
        9223372036854775807) AS first_id
)
SELECT d.id AS distribution_id, recent.status, count(*) AS n
FROM distributions AS d
CROSS JOIN bound
CROSS JOIN LATERAL (
    SELECT status FROM deliveries
    WHERE distribution_id = d.id AND id >= bound.first_id
    ORDER BY id DESC LIMIT :cap
) AS recent
WHERE d.deleted_at IS NULL
GROUP BY 1, 2
""")


@dataclass(frozen=True)
class Gate:
    """The Braze gate as an operator reads it."""

    state: str  # sending, paused, outage, blocked, unknown
    label: str
    since: datetime | None = None
    until: datetime | None = None
    reason: str | None = None


def gate_of(row: BrazeGate | None, now: datetime) -> Gate:
    if row is None:
        return Gate("unknown", "no Braze call made yet (no gate state recorded)")
    if row.blocked_reason is not None:
        return Gate(
            "blocked", "blocked: a key problem", since=row.blocked_since, reason=row.blocked_reason
        )
    if row.paused_until is not None and row.paused_until > now:
        return Gate("paused", "paused by Braze's rate limit", until=row.paused_until)
    if row.failing_since is not None:
        return Gate("outage", "Braze outage: calls failing", since=row.failing_since)
    return Gate("sending", "sending")


@dataclass
class Overview:
    events_per_minute: list[tuple[datetime, int]]
    delivered_per_minute: list[tuple[datetime, int]]
    waiting: int
    oldest_wait: datetime | None
    gates: list[Gate]
    failures: list[tuple[str, str, int]]
    data_points_saved: int
    attempts_scanned: int
    capped: bool = False
    hours: int = HOURS_SHOWN


async def overview(session: AsyncSession, *, now: datetime | None = None) -> Overview:
    now = now or datetime.now(UTC)
    since = now - timedelta(hours=HOURS_SHOWN)
    bounds = {"since": since, "cap": SCAN_CAP}
    events = [(r.minute, r.n) for r in await session.execute(_PER_MINUTE_EVENTS, bounds)]
    delivered = [(r.minute, r.n) for r in await session.execute(_PER_MINUTE_DELIVERED, bounds)]
    waiting = (await session.execute(_WAITING)).one()
    failures: list[tuple[str, str, int]] = []
    saved = scanned = 0
    for row in await session.execute(
        _LAST_DAY, {"since": now - timedelta(days=1), "cap": SCAN_CAP}
    ):
        if row.kind == "failure":
            failures.append((row.outcome, row.reason, row.n))
        elif row.kind == "saved":
            saved = int(row.n)
        else:
            scanned = int(row.n)
    failures.sort(key=lambda f: -f[2])
    gates = [gate_of(g, now) for g in (await session.scalars(select(BrazeGate))).all()]
    return Overview(
        events_per_minute=events,
        delivered_per_minute=delivered,
        waiting=waiting.n,
        oldest_wait=waiting.oldest,
        gates=gates or [gate_of(None, now)],
        failures=failures[:15],
        data_points_saved=saved,
        attempts_scanned=scanned,
        capped=scanned >= SCAN_CAP or sum(n for _, n in events) >= SCAN_CAP,
    )


async def last_24h(session: AsyncSession) -> dict[uuid.UUID, dict[str, int]]:
    """Deliveries of the last 24 hours per live distribution and status (capped per one)."""
    since = datetime.now(UTC) - timedelta(days=1)
    counts: dict[uuid.UUID, dict[str, int]] = {}
    for row in await session.execute(_LAST_24H, {"since": since, "cap": COUNT_CAP}):
        counts.setdefault(row.distribution_id, {})[row.status] = row.n
    return counts


@dataclass
class Customer:
    query: str
    events: Sequence[WebhookEvent]
    deliveries: Sequence[Delivery]
    attempts: dict[int, list[DeliveryAttempt]] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)


def braze_keys(query: str) -> list[str]:
    """The Braze user keys a typed id may be: `external_id:q`, `email:q`, `braze_id:q`, or
    the key itself when it was typed whole."""
    keys = [f"{kind}:{query}" for kind in KEY_TYPES]
    if query.split(":", 1)[0] in (*KEY_TYPES, "user_alias"):
        keys.append(query)
    return keys


async def customer(session: AsyncSession, query: str) -> Customer:
    """A customer's newest events (by source id or Voucherify id) and deliveries (of those
    events, or to a Braze user the query names), each with its attempts."""
    events = (
        await session.scalars(
            select(WebhookEvent)
            .where(or_(WebhookEvent.customer_source_id == query, WebhookEvent.customer_id == query))
            .order_by(WebhookEvent.id.desc())
            .limit(CUSTOMER_ROWS)
        )
    ).all()
    event_ids = [e.id for e in events]
    deliveries = (
        await session.scalars(
            select(Delivery)
            .where(
                or_(
                    Delivery.event_id.in_(event_ids), Delivery.braze_user_key.in_(braze_keys(query))
                )
            )
            .order_by(Delivery.id.desc())
            .limit(CUSTOMER_ROWS * 2)
        )
    ).all()
    attempts: dict[int, list[DeliveryAttempt]] = {}
    if deliveries:
        rows = await session.scalars(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.delivery_id.in_([d.id for d in deliveries]))
            .order_by(DeliveryAttempt.id)
        )
        for attempt in rows:
            attempts.setdefault(attempt.delivery_id, []).append(attempt)
    skipped: dict[str, int] = {}
    for delivery in deliveries:
        if delivery.skip_reason:
            skipped[delivery.skip_reason] = skipped.get(delivery.skip_reason, 0) + 1
        for attempt in attempts.get(delivery.id, []):
            for reason, names in (attempt.omitted or {}).items():
                skipped[reason] = skipped.get(reason, 0) + len(names)
    return Customer(query, events, deliveries, attempts, skipped)


def minute_bars(series: list[tuple[datetime, int]], *, now: datetime, hours: int) -> list[Any]:
    """One (minute, count) per minute of the window, zeros included, for the bar chart."""
    start = (now - timedelta(hours=hours)).replace(second=0, microsecond=0)
    by_minute = {m: n for m, n in series}
    return [
        (minute, by_minute.get(minute, 0))
        for minute in (start + timedelta(minutes=i) for i in range(hours * 60 + 1))
    ]
