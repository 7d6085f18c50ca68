"""Running a stored event through one distribution again, as the distribution is configured now.

Every replay but the one-delivery one comes down to this step per (event, distribution):
map the stored webhook with the distribution's current version (the same `plan_deliveries`
intake uses), then
- a settled delivery of the pair is queued again with the new attributes and version, its retry
  schedule started over (`attempts` back to 0; the attempt log keeps every earlier try);
- a pair without a delivery (the distribution matches now and did not then) gets a new one,
  with the replay's trigger, as intake would have stored it;
- a delivery still queued (pending, in flight) is left alone: skipped `already_queued`;
- an event the distribution no longer matches, or one the mapping skips (no consent, no
  identifier, ...), queues nothing: skipped with that reason, the delivery left as it was.
Each delivery touched gets an attempt row with the replay id, saying what the replay did.
A forced replay also sets back recorded event times later than the delivery's, so that its
value wins over `stale` (`app/delivery/store/state_reset.py`); the attempt row names them.

Deliveries that came from no event (or whose event body was pruned) can only be sent as stored.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.delivery.models import IN_FLIGHT, PENDING, SKIPPED, Delivery
from app.delivery.store import replay as store
from app.delivery.store import state_reset
from app.distributions import envelope as envelope_parser
from app.distributions.models import Distribution
from app.distributions.service import to_config
from app.ops.models import Replay
from app.webhooks.matching import MatchableDistribution, plan_deliveries
from app.webhooks.models import WebhookEvent

logger = logging.getLogger(__name__)

# Why a replay queued nothing for a pair (besides the mapping's own skip reasons).
ALREADY_QUEUED = "already_queued"
DISTRIBUTION_PAUSED = "distribution_paused"
DISTRIBUTION_DELETED = "distribution_deleted"
DISTRIBUTION_INVALID = "distribution_invalid"
NOT_A_TRIGGER = "not_a_trigger"
EVENT_BODY_PRUNED = "event_body_pruned"
EVENT_UNPARSABLE = "event_unparsable"
NOTHING_TO_SEND = "nothing_to_send"


@dataclass
class Tally:
    """What one step (or batch) of a replay did; added to the replay's counts."""

    matched: int = 0
    queued: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    # attribute_state entries a forced replay set back (see `state_reset`)
    state_reset: int = 0

    def skip(self, reason: str) -> None:
        self.matched += 1
        self.skipped[reason] += 1

    def queue(self) -> None:
        self.matched += 1
        self.queued += 1

    def add_to(self, replay: Replay) -> None:
        replay.matched += self.matched
        replay.queued += self.queued
        replay.state_reset += self.state_reset
        replay.skipped = dict(Counter(replay.skipped) + self.skipped)


async def rerun(
    *,
    session: AsyncSession,
    replay: Replay,
    event: WebhookEvent | None,
    distribution: Distribution,
    delivery: Delivery | None,
    tally: Tally,
) -> None:
    """Queue (or create) the delivery of (event, distribution) as the distribution maps it now."""
    if delivery is not None and delivery.status in (PENDING, IN_FLIGHT):
        tally.skip(ALREADY_QUEUED)
        return
    if distribution.deleted_at is not None or distribution.status != "active":
        reason = DISTRIBUTION_DELETED if distribution.deleted_at else DISTRIBUTION_PAUSED
        _note(session, replay, delivery, reason)
        tally.skip(reason)
        return
    if event is None:
        await _resend_as_stored(session=session, replay=replay, delivery=delivery, tally=tally)
        return
    envelope, problem = _envelope(event)
    if envelope is None:
        _note(session, replay, delivery, problem)
        tally.skip(problem)
        return
    try:
        config = to_config(distribution)
    except ValidationError as exc:
        # Stored but unreadable (a hand edit, a rule tightened by an upgrade): intake leaves it
        # out of matching; so does a replay, saying why, rather than failing the whole replay.
        logger.error("replay %s: distribution %s is not valid: %s", replay.id, distribution.id,
                     exc.errors(include_input=False))  # fmt: skip
        _note(session, replay, delivery, DISTRIBUTION_INVALID)
        tally.skip(DISTRIBUTION_INVALID)
        return
    current = MatchableDistribution(distribution.id, distribution.version, config)
    planned = plan_deliveries(envelope=envelope, distributions=[current])
    if not planned:
        reason = NOT_A_TRIGGER if event.event_type not in distribution.triggers else "filtered_out"
        _note(session, replay, delivery, reason)
        tally.skip(reason)
        return
    row = planned[0]
    if row["status"] == SKIPPED and delivery is not None:
        _note(session, replay, delivery, row["skip_reason"])
        tally.skip(row["skip_reason"])
        return
    if delivery is None:
        delivery = store.new_delivery(
            session, distribution_id=distribution.id, event_id=event.id, trigger=replay.trigger,
            event_time=event.event_created_at,
        )  # fmt: skip
    store.store_mapped(delivery, version=distribution.version, row=row, replay_id=replay.id)
    if row["status"] == SKIPPED:  # a new pair the mapping skips: stored as intake stores it
        await session.flush()
        _note(session, replay, delivery, row["skip_reason"])
        tally.skip(row["skip_reason"])
        return
    await _queue(session, delivery, replay, tally, f"version {distribution.version}")


async def _resend_as_stored(
    *, session: AsyncSession, replay: Replay, delivery: Delivery | None, tally: Tally
) -> None:
    if delivery is None or delivery.attributes is None:
        _note(session, replay, delivery, NOTHING_TO_SEND)
        tally.skip(NOTHING_TO_SEND)
        return
    await _queue(session, delivery, replay, tally, "as stored (no event to map again)")


async def _queue(
    session: AsyncSession, delivery: Delivery, replay: Replay, tally: Tally, what: str
) -> None:
    store.queue_again(delivery, replay_id=replay.id, force=replay.force)
    await session.flush()
    resets = []
    if replay.force:
        resets = await state_reset.reset_for_forced_replay(session, delivery_id=delivery.id)
    force = " (force)" if replay.force else ""
    store.log_replay(
        session, delivery_id=delivery.id, outcome="replay_queued", replay_id=replay.id,
        message=f"{replay.kind} replay asked by {replay.requested_by}{force}: {what}"
        + state_reset.describe(resets),
    )  # fmt: skip
    tally.queue()
    tally.state_reset += len(resets)


def _note(session: AsyncSession, replay: Replay, delivery: Delivery | None, reason: str) -> None:
    """The delivery's log says the replay looked at it and why it sent nothing."""
    if delivery is None or delivery.id is None:
        return
    store.log_replay(
        session, delivery_id=delivery.id, outcome="replay_skipped", replay_id=replay.id,
        message=f"{replay.kind} replay asked by {replay.requested_by}: {reason}",
    )  # fmt: skip


def _envelope(event: WebhookEvent) -> tuple[envelope_parser.Envelope | None, str]:
    if event.raw_body is None:
        return None, EVENT_BODY_PRUNED
    try:
        return envelope_parser.parse(event.raw_body), ""
    except envelope_parser.EnvelopeError:
        return None, EVENT_UNPARSABLE
