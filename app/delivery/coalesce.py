"""Coalescing: all due deliveries of one Braze user become one attributes object.

For each attribute the value of the newest event wins. Against `attribute_state`, a value
equal to the one Braze already has is left out (`unchanged`: Braze bills every attribute sent),
and a value from an event older than the one that set the current value is refused (`stale`),
unless its delivery is forced (an operator's replay with `force`: the operator says this value
is the one Braze must hold).
Pure: the caller loads the deliveries and the state and acts on the plan.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

# Keys of a Braze attributes object that say who the user is or how to update, not attributes.
IDENTITY_KEYS = frozenset({"external_id", "user_alias", "braze_id", "email", "phone"})
FLAG_KEYS = frozenset({"_update_existing_only"})

UNCHANGED = "unchanged"
STALE = "stale"


@dataclass(frozen=True)
class DueDelivery:
    id: int
    braze_user_key: str
    attributes: Mapping[str, Any]
    event_time: datetime | None
    force: bool = False
    # When and how the delivery was made: what its delivery latency is measured from.
    created_at: datetime | None = None
    trigger: str = "webhook"


@dataclass(frozen=True)
class KnownValue:
    """A row of attribute_state: what Braze has, and the time of the event that set it."""

    value: Any
    event_time: datetime | None
    # A send after this value failed with an unknown outcome: Braze may hold another value.
    uncertain: bool = False
    # The newest event among such sends: Braze may hold its value, so older ones are stale.
    doubt_event_time: datetime | None = None
    # When Braze last accepted `value` (None: not recorded); trusted for ATTRIBUTE_TRUST_DAYS.
    sent_at: datetime | None = None

    @property
    def newest_event_time(self) -> datetime | None:
        """The newest event whose value Braze may hold."""
        times = [t for t in (self.event_time, self.doubt_event_time) if t is not None]
        return max(times) if times else None


@dataclass
class UserUpdate:
    """One Braze object to send, and what each attribute in it came from."""

    braze_user_key: str
    object: dict[str, Any]
    delivery_ids: list[int]
    # attribute -> (event time, delivery id) of the value sent, for attribute_state.
    sources: dict[str, tuple[datetime | None, int]] = field(default_factory=dict)


@dataclass
class Plan:
    updates: list[UserUpdate] = field(default_factory=list)
    # Deliveries with nothing left to send, and why (unchanged or stale).
    skipped: dict[int, str] = field(default_factory=dict)
    # Per delivery, the attributes left out: {"unchanged": [...], "stale": [...]}.
    omitted: dict[int, dict[str, list[str]]] = field(default_factory=dict)
    data_points_saved: int = 0
    # Values left out as unchanged, from an event newer than the one attribute_state knows:
    # (user, attribute, value, event time, delivery id), to be remembered with that newer time
    # so that a retry of an older event in between is refused as stale, not sent.
    confirmed: list[tuple[str, str, Any, datetime | None, int]] = field(default_factory=list)


def _newest_last(delivery: DueDelivery) -> tuple[bool, datetime | None, int]:
    # Deliveries without an event time sort first (oldest); ties keep the queue order.
    return (delivery.event_time is not None, delivery.event_time, delivery.id)


@dataclass(frozen=True)
class Trust:
    """How long a value Braze accepted is trusted to be still there: profiles are deleted,
    merged or edited by other tools. After `period`, an equal value is sent again."""

    now: datetime
    period: timedelta | None = None

    def trusts(self, known: KnownValue) -> bool:
        if self.period is None or known.sent_at is None:
            return True
        return self.now - known.sent_at <= self.period


def plan(
    deliveries: Iterable[DueDelivery],
    known: Mapping[tuple[str, str], KnownValue],
    trust: Trust | None = None,
) -> Plan:
    by_user: dict[str, list[DueDelivery]] = defaultdict(list)
    for delivery in deliveries:
        by_user[delivery.braze_user_key].append(delivery)
    result = Plan()
    for user_key, group in by_user.items():
        _plan_user(user_key, sorted(group, key=_newest_last), known, trust, result)
    return result


def _plan_user(
    user_key: str,
    group: list[DueDelivery],
    known: Mapping[tuple[str, str], KnownValue],
    trust: Trust | None,
    result: Plan,
) -> None:
    newest = group[-1]
    obj: dict[str, Any] = {k: v for k, v in newest.attributes.items() if k in IDENTITY_KEYS}
    # Create the profile if any distribution may; "update only" when all of them say so. A
    # delivery without the flag may create (the mapping leaves it out for Braze's default).
    if all(d.attributes.get("_update_existing_only", False) for d in group):
        obj["_update_existing_only"] = True
    elif any("_update_existing_only" in d.attributes for d in group):
        obj["_update_existing_only"] = False

    candidates: dict[str, tuple[Any, datetime | None, DueDelivery]] = {}
    for delivery in group:
        for name, value in delivery.attributes.items():
            if name not in IDENTITY_KEYS and name not in FLAG_KEYS:
                candidates[name] = (value, delivery.event_time, delivery)

    update = UserUpdate(user_key, obj, [d.id for d in group])
    left_out: dict[int, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for name, (value, event_time, delivery) in candidates.items():
        current = known.get((user_key, name))
        # Older than the newest event whose value Braze may hold (a send with an unknown
        # outcome counts: Braze may have applied it).
        known_time = current.newest_event_time if current is not None else None
        if _older(event_time, known_time) and not delivery.force:
            left_out[delivery.id][STALE].append(name)
        elif (
            current is not None and current.value == value and not delivery.force
            and not current.uncertain and (trust is None or trust.trusts(current))
        ):  # fmt: skip
            left_out[delivery.id][UNCHANGED].append(name)
            result.data_points_saved += 1
            if _older(current.event_time, event_time):
                result.confirmed.append((user_key, name, value, event_time, delivery.id))
        else:
            obj[name] = value
            # Recorded with the newest time known: attribute_state never goes back in time nor
            # forgets a time it knew (a value without one, or a forced older one, would let an
            # older event through next), and so it can record what Braze now holds.
            update.sources[name] = (_newest(event_time, known_time), delivery.id)

    for delivery_id, reasons in left_out.items():
        result.omitted[delivery_id] = {reason: names for reason, names in reasons.items()}
    if update.sources:
        result.updates.append(update)
        return
    for delivery in group:
        reasons = left_out.get(delivery.id, {})
        result.skipped[delivery.id] = STALE if STALE in reasons else UNCHANGED


def _older(event_time: datetime | None, current: datetime | None) -> bool:
    return event_time is not None and current is not None and event_time < current


def _newest(event_time: datetime | None, known: datetime | None) -> datetime | None:
    return known if event_time is None or _older(event_time, known) else event_time


def separate(update: UserUpdate, deliveries: Mapping[int, DueDelivery]) -> list[UserUpdate]:
    """`update` taken apart by the delivery each value came from, oldest first: when Braze
    refuses a coalesced object, which delivery's value it refuses shows only when each goes
    alone. A delivery whose values a newer one replaced goes with that newer one (as it would
    have in the whole object); one with none of the values sent gets a part with nothing to
    send (no `sources`)."""
    identity = {k: v for k, v in update.object.items() if k in IDENTITY_KEYS or k in FLAG_KEYS}
    parts: dict[int, UserUpdate] = {}
    for delivery in sorted((deliveries[i] for i in update.delivery_ids), key=_newest_last):
        own = {k: t for k, t in update.sources.items() if t[1] == delivery.id}
        parts[delivery.id] = UserUpdate(
            update.braze_user_key, {**identity, **{k: update.object[k] for k in own}},
            [delivery.id], own,
        )  # fmt: skip
    for delivery_id, part in list(parts.items()):
        if part.sources:
            continue
        winners = [update.sources[k][1] for k in deliveries[delivery_id].attributes
                   if k in update.sources]  # fmt: skip
        if winners:
            parts[winners[0]].delivery_ids.append(delivery_id)
            del parts[delivery_id]
    return list(parts.values())
