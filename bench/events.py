"""A stream of signed Voucherify webhooks for many users, and what Braze must end up with.

Each user gets several events over time: loyalty points added (the points total grows) and
orders paid (a new order id and amount). The stream can carry duplicates (the same bytes sent
again, as Voucherify does after a lost answer) and out-of-order pairs (a user's older event
posted right after a newer one). Because the relay orders attribute values by event time, the
final value of every attribute is the one of the user's newest event, whatever the arrival order.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from app.webhooks.signature import sign
from tests.factories import sample

LOYALTY = "customer.voucher.loyalty_card.points_added"
ORDER = "customer.order.paid"
# Attributes whose value differs in every event of a user: their order of arrival at Braze
# tells whether an older value overwrote a newer one.
ORDERED_ATTRIBUTES = ("loyalty_points", "last_order_id")
_START = datetime(2026, 3, 1, tzinfo=UTC)


def distributions() -> list[dict[str, Any]]:
    """The two distributions the stream is meant for (ops API bodies)."""
    common = {"filters": {}, "consent": None, "code_source": {"type": "event"},
              "identity": {"type": "external_id", "path": "customer.source_id"}}  # fmt: skip
    return [
        {**common, "name": "loyalty-points", "triggers": [LOYALTY], "mapping": [
            {"source": "voucher.code", "attribute": "loyalty_card_code"},
            {"source": "voucher.loyalty_card.points", "attribute": "loyalty_points",
             "format": "integer"},
        ]},
        {**common, "name": "last-order", "triggers": [ORDER], "mapping": [
            {"source": "voucher.code", "attribute": "last_order_code"},
            {"source": "order.id", "attribute": "last_order_id"},
            {"source": "order.amount", "attribute": "last_order_amount", "format": "integer"},
            {"source": "order.status", "attribute": "last_order_status"},
        ]},
    ]  # fmt: skip


@dataclass(frozen=True)
class Webhook:
    raw: bytes
    signature: str
    key: tuple[str, str]  # (event.id, source.id): what the relay dedupes on
    user: str  # the Braze user key, `external_id:<source_id>`
    event_time: datetime
    attributes: dict[str, Any]  # what the relay should send for this event


@dataclass
class Stream:
    webhooks: list[Webhook]  # in posting order, duplicates included
    users: int
    unique: int
    duplicates: int
    out_of_order: int
    by_user: dict[str, list[Webhook]] = field(default_factory=dict)  # unique, oldest first


def build_stream(
    *,
    users: int,
    webhooks: int,
    secret: str,
    run: str,
    seed: int = 7,
    duplicate_fraction: float = 0.0,
    out_of_order_fraction: float = 0.0,
) -> Stream:
    """`webhooks` bodies in all (duplicates included) for `users` users, each user at least one
    event when there are enough. Event ids carry `run`, so every run posts new events."""
    rng = random.Random(seed)
    duplicates = int(webhooks * duplicate_fraction)
    unique = webhooks - duplicates
    counts = [1 if n < unique else 0 for n in range(users)]
    for _ in range(unique - sum(counts)):
        counts[rng.randrange(users)] += 1
    templates = {LOYALTY: sample(LOYALTY), ORDER: sample(ORDER)}

    by_user: dict[str, list[Webhook]] = {}
    for n, count in enumerate(counts):
        source_id = f"{run}-user-{n}"
        points, events = rng.randrange(0, 500), []
        for k in range(count):
            # One event a minute per user, users a few milliseconds apart: unique times.
            at = _START + timedelta(minutes=k, milliseconds=n * 3)
            kind = LOYALTY if rng.random() < 0.5 else ORDER
            points += rng.randrange(10, 200)
            events.append(
                _webhook(templates[kind], kind=kind, source_id=source_id, at=at,
                         number=k, points=points, amount=rng.choice((1999, 2999, 4497, 5696)),
                         secret=secret, run=run)
            )  # fmt: skip
        if events:
            by_user[events[0].user] = events

    # Roughly the order Voucherify sends them: by time, users interleaved.
    ordered = sorted((w for ws in by_user.values() for w in ws), key=lambda w: w.event_time)
    out_of_order = _swap_some(ordered, by_user, out_of_order_fraction, rng)
    stream = list(ordered)
    for _ in range(duplicates):
        # A copy of an earlier webhook, sent again a little later.
        original = rng.randrange(len(ordered))
        stream.insert(min(len(stream), original + rng.randrange(1, 400)), ordered[original])
    return Stream(stream, len(by_user), unique, duplicates, out_of_order, by_user)


def _webhook(
    template: dict[str, Any], *, kind: str, source_id: str, at: datetime, number: int,
    points: int, amount: int, secret: str, run: str,
) -> Webhook:  # fmt: skip
    body = json.loads(json.dumps(template))
    stamp = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    event_id = f"evcus_{run}_{source_id}_{number}"
    body["id"] = f"whs_{run}_{source_id}_{number}"
    body["created_at"] = stamp
    body["event"]["id"], body["event"]["created_at"] = event_id, stamp
    body["data"]["customer"]["source_id"] = source_id
    voucher = body["data"]["voucher"]
    if kind == LOYALTY:
        voucher["code"] = f"LOY-{source_id}"
        voucher["loyalty_card"]["points"] = points
        attributes: dict[str, Any] = {"loyalty_card_code": voucher["code"],
                                      "loyalty_points": points}  # fmt: skip
    else:
        order = body["data"]["order"]
        order["id"], order["amount"] = f"ord_{source_id}_{number}", amount
        attributes = {
            "last_order_code": voucher["code"], "last_order_id": order["id"],
            "last_order_amount": amount, "last_order_status": order["status"],
        }  # fmt: skip
    raw = json.dumps(body, separators=(",", ":")).encode()
    return Webhook(
        raw=raw, signature=sign(raw, secret.encode()), key=(event_id, body["source"]["id"]),
        user=f"external_id:{source_id}", event_time=at, attributes=attributes,
    )  # fmt: skip


def _swap_some(
    ordered: list[Webhook], by_user: dict[str, list[Webhook]], fraction: float, rng: random.Random
) -> int:
    """Post the older of two events of a user right after the newer one, for `fraction` of the
    users with at least two events. Returns how many pairs were swapped."""
    if fraction <= 0:
        return 0
    position = {id(w): i for i, w in enumerate(ordered)}
    swapped = 0
    for events in by_user.values():
        if len(events) >= 2 and rng.random() < fraction:
            k = rng.randrange(len(events) - 1)
            i, j = position[id(events[k])], position[id(events[k + 1])]
            ordered[i], ordered[j] = ordered[j], ordered[i]
            swapped += 1
    return swapped


def expected_profiles(by_user: dict[str, list[Webhook]]) -> dict[str, dict[str, Any]]:
    """Per user, every attribute's final value: the one of the newest event that sets it."""
    profiles: dict[str, dict[str, Any]] = {}
    for user, events in by_user.items():
        profile: dict[str, Any] = {}
        for webhook in sorted(events, key=lambda w: w.event_time):
            profile.update(webhook.attributes)
        profiles[user] = profile
    return profiles


def changed_attributes(by_user: dict[str, list[Webhook]]) -> int:
    """Data points that carry news: per user, in event order, each attribute value that differs
    from the user's previous value of it (the first value of each attribute included)."""
    changed = 0
    for events in by_user.values():
        current: dict[str, Any] = {}
        for webhook in sorted(events, key=lambda w: w.event_time):
            for name, value in webhook.attributes.items():
                if current.get(name, _NOTHING) != value:
                    changed += 1
                    current[name] = value
    return changed


_NOTHING = object()


@dataclass(frozen=True)
class Applied:
    """One attributes object Braze (the emulator) applied, in the order it applied them."""

    user: str
    attributes: dict[str, Any]
    at: float


def profile_mismatches(
    expected: dict[str, dict[str, Any]], profiles: dict[str, dict[str, Any]]
) -> list[str]:
    """Users whose profile at Braze lacks an expected final value, one line each."""
    problems = []
    for user, attributes in expected.items():
        actual = profiles.get(user, {})
        wrong = {k: (v, actual.get(k)) for k, v in attributes.items() if actual.get(k) != v}
        if wrong:
            problems.append(f"{user}: expected vs actual {wrong}")
    return problems


def stale_overwrites(
    by_user: dict[str, list[Webhook]], applied: Iterable[Applied],
    attributes: Sequence[str] = ORDERED_ATTRIBUTES,
) -> list[str]:  # fmt: skip
    """Every time Braze applied a value from an older event after one from a newer event, for
    the attributes whose values identify their event."""
    times: dict[tuple[str, str, Any], datetime] = {}
    for user, events in by_user.items():
        for webhook in events:
            for name in attributes:
                if name in webhook.attributes:
                    times[(user, name, webhook.attributes[name])] = webhook.event_time
    newest: dict[tuple[str, str], datetime] = {}
    problems = []
    for item in applied:
        for name in attributes:
            if name not in item.attributes:
                continue
            at = times.get((item.user, name, item.attributes[name]))
            if at is None:
                problems.append(f"{item.user} {name}={item.attributes[name]!r}: never sent")
                continue
            seen = newest.get((item.user, name))
            if seen is not None and at < seen:
                problems.append(
                    f"{item.user} {name}={item.attributes[name]!r} (event {at:%H:%M:%S}) "
                    f"applied after a value from {seen:%H:%M:%S}"
                )
            newest[(item.user, name)] = max(at, seen) if seen else at
    return problems
