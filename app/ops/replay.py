"""Replaying one delivery: queue it again, recorded as a replay with who asked and why."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.api.auth import OpsPrincipal
from app.delivery.models import DEAD, DELIVERED, FAILED, SKIPPED, Delivery
from app.delivery.store import replay as store
from app.delivery.store import state_reset
from app.errors import ConflictError, NotFoundError
from app.ops.models import Replay

REPLAYABLE = (DELIVERED, FAILED, DEAD, SKIPPED)


async def replay_delivery(
    *, session: AsyncSession, delivery_id: int, force: bool, principal: OpsPrincipal
) -> Replay:
    """Queue a settled delivery again. `force` sends even values Braze already has."""
    delivery = await session.get(Delivery, delivery_id, with_for_update=True)
    if delivery is None:
        raise NotFoundError(f"no delivery {delivery_id}")
    if delivery.status not in REPLAYABLE:
        raise ConflictError(
            f"delivery {delivery_id} is {delivery.status}: it is queued already; replay it "
            "once it has settled"
        )
    if delivery.attributes is None:
        raise ConflictError(
            f"delivery {delivery_id} has nothing to send (skipped: {delivery.skip_reason}); "
            "fix the distribution or the customer, then replay the event"
        )
    # Done once the delivery is queued again: what happens to it then is the delivery's story.
    now = datetime.now(UTC)
    replay = Replay(
        kind="delivery", requested_by=principal.name, filter={"delivery_id": delivery_id},
        force=force, matched=1, queued=1, started_at=now, finished_at=now,
    )  # fmt: skip
    session.add(replay)
    await session.flush()
    store.queue_again(
        delivery, replay_id=replay.id, force=force, now=now, clear_skip=True, drop_lease=False
    )
    await session.flush()
    # Forced: the operator's value wins over stale (`state_reset`), and the answer says so.
    resets = []
    if force:
        resets = await state_reset.reset_for_forced_replay(session, delivery_id=delivery_id)
    replay.state_reset = len(resets)
    store.log_replay(
        session, delivery_id=delivery_id, outcome="replay_queued", replay_id=replay.id,
        message=f"replay asked by {principal.name}" + (" (force)" if force else "")
        + state_reset.describe(resets),
    )  # fmt: skip
    await session.flush()
    return replay
