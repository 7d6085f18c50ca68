"""Replays of an event, of a distribution over a time window, and of a bulk filter.

Each one is recorded in `replays` (who asked, when, the filter, the counts). An event replay runs
inline. A distribution replay runs inline when it covers at most REPLAY_INLINE_ROWS events, else
in the background like a bulk replay, which always runs in the background (`bulk_replay`).
"""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.auth import OpsPrincipal
from app.api.pagination import BadCursorError
from app.api.params import bounded_time
from app.config import Settings
from app.delivery.models import Delivery
from app.delivery.store import withdrawal
from app.distributions.models import Distribution
from app.errors import ConflictError, NotFoundError, VoucherRelayError
from app.ops import replay_scope
from app.ops.bulk_replay import advance
from app.ops.models import CANCELED, DONE, QUEUED, RUNNING, Replay
from app.ops.replay_schemas import BulkFilter, DistributionReplayRequest, ReplayPlan
from app.ops.requeue import Tally, rerun
from app.ops.statement_budget import bounded
from app.webhooks.models import WebhookEvent

logger = logging.getLogger(__name__)


class ReplayBoundError(VoucherRelayError):
    """A replay past REPLAY_MAX_WINDOW_DAYS or REPLAY_MAX_ROWS; the message names the bound."""

    status_code = 422
    code = "replay_too_large"


async def replay_event(
    *, session: AsyncSession, event_id: int, force: bool, principal: OpsPrincipal
) -> Replay:
    """Map a stored event again with every distribution that matches it now (or has a
    delivery of it), queueing or creating each delivery (see `requeue`)."""
    # Locked: two replays of one event must not both create a delivery for a new distribution.
    event = await session.get(WebhookEvent, event_id, with_for_update=True)
    if event is None:
        raise NotFoundError(f"no event {event_id}")
    deliveries = (
        (
            await session.execute(
                select(Delivery)
                .where(Delivery.event_id == event_id)
                .order_by(Delivery.id)
                .with_for_update()
            )
        )
        .scalars()
        .all()
    )
    existing = {d.distribution_id: d for d in deliveries}  # the newest wins if there are two
    candidates = select(Distribution).where(
        or_(
            Distribution.id.in_(list(existing)),
            Distribution.triggers.contains([event.event_type])
            & Distribution.deleted_at.is_(None)
            & (Distribution.status == "active"),
        )
    )
    distributions = (await session.execute(candidates.order_by(Distribution.id))).scalars().all()
    replay = await _record(
        session, kind="event", principal=principal, filter={"event_id": event_id}, force=force
    )
    replay.started_at = datetime.now(UTC)
    tally = Tally()
    for distribution in distributions:
        await rerun(
            session=session, replay=replay, event=event, distribution=distribution,
            delivery=existing.get(distribution.id), tally=tally,
        )  # fmt: skip
    tally.add_to(replay)
    replay.finished_at = datetime.now(UTC)
    await session.flush()
    return replay


async def replay_distribution(
    *, session: AsyncSession, distribution_id: uuid.UUID, request: DistributionReplayRequest,
    principal: OpsPrincipal, settings: Settings,
) -> Replay:  # fmt: skip
    """Run a distribution over the stored events of its triggers received in the window."""
    distribution = await session.get(Distribution, distribution_id)
    if distribution is None:
        raise NotFoundError(f"no distribution {distribution_id}")
    if distribution.deleted_at is not None or distribution.status != "active":
        state = "deleted" if distribution.deleted_at else distribution.status
        raise ConflictError(f"distribution {distribution_id} is {state}; only active ones replay")
    scope = replay_scope.DistributionScope(
        distribution_id=distribution_id, triggers=distribution.triggers,
        since=request.since, until=request.until or datetime.now(UTC),
    )  # fmt: skip
    check_window(scope.since, scope.until, settings)
    last_id, total = await _bounded_count(
        session, scope, last_id_of=replay_scope.last_event_id, settings=settings
    )
    replay = await _record(
        session, kind="distribution", principal=principal, force=request.force,
        filter=scope.model_dump(mode="json"), total=total, last_id=last_id,
    )  # fmt: skip
    if total > settings.replay_inline_rows:
        return replay
    # Small enough to answer with the result: the same batches the worker would run.
    replay.status, replay.started_at = RUNNING, datetime.now(UTC)
    while await advance(session=session, replay=replay, limit=settings.replay_batch_size) == (
        settings.replay_batch_size
    ):
        pass
    replay.status, replay.finished_at = DONE, datetime.now(UTC)
    await session.flush()
    return replay


async def request_bulk(
    *, session: AsyncSession, scope: BulkFilter, force: bool, principal: OpsPrincipal,
    settings: Settings,
) -> Replay:  # fmt: skip
    """Queue a bulk replay of every settled delivery the filter matches now (the worker runs
    it); refused past the bounds."""
    check_window(scope.since, scope.until, settings)
    last_id, total = await _bounded_count(
        session, scope, last_id_of=replay_scope.last_delivery_id, settings=settings
    )
    return await _record(
        session, kind="bulk", principal=principal, force=force,
        filter=scope.model_dump(mode="json", exclude_none=True), total=total, last_id=last_id,
    )  # fmt: skip


async def plan_bulk(*, session: AsyncSession, scope: BulkFilter, settings: Settings) -> ReplayPlan:
    """What `request_bulk` with this filter would take up now; changes nothing."""
    check_window(scope.since, scope.until, settings)
    last_id, _ = await _bounded_count(
        session, scope, last_id_of=replay_scope.last_delivery_id, settings=settings
    )
    async with bounded(session, settings.ops_statement_timeout_seconds, narrow=NARROW_REPLAY):
        return await replay_scope.plan(session, scope, last_id=last_id)


async def cancel(*, session: AsyncSession, replay_id: uuid.UUID, principal: OpsPrincipal) -> Replay:
    """Stop a replay and mark what it queued that has not gone out yet for withdrawal: a queued
    or running one runs no further batch; the deliveries it queued that still wait (also those
    of a replay that is done or failed) are skipped as `replay_canceled` in batches after the
    answer (`withdrawal.carry_out_on`), and no claim takes them from this commit on; those
    being published or sent at that moment finish (a retry of one is withdrawn too)."""
    # Locked: waits for a running batch to commit, so the counts answered are final.
    replay = await session.get(Replay, replay_id, with_for_update=True, populate_existing=True)
    if replay is None:
        raise NotFoundError(f"no replay {replay_id}")
    if replay.status == CANCELED:
        raise ConflictError(f"replay {replay_id} is canceled already")
    now = datetime.now(UTC)
    if replay.finished_at is None:
        replay.finished_at = now
    replay.status, replay.canceled_at, replay.canceled_by = CANCELED, now, principal.name
    replay.leased_by = replay.lease_expires_at = None
    replay.withdrawing = await withdrawal.has_unsettled(session, withdrawal.REPLAY, replay_id)
    await session.flush()
    logger.info(
        "replay %s canceled by %s%s", replay_id, principal.name,
        ": its waiting deliveries are being withdrawn" if replay.withdrawing else "",
    )  # fmt: skip
    return replay


async def get(*, session: AsyncSession, replay_id: uuid.UUID) -> Replay:
    replay = await session.get(Replay, replay_id, populate_existing=True)
    if replay is None:
        raise NotFoundError(f"no replay {replay_id}")
    return replay


async def page(
    *, session: AsyncSession, limit: int, cursor: str | None, kind: str | None,
    status: str | None,
) -> tuple[Sequence[Replay], str | None]:  # fmt: skip
    """Newest first, keyset on (requested_at, id): new replays never shift a later page."""
    query = select(Replay)
    if kind is not None:
        query = query.where(Replay.kind == kind)
    if status is not None:
        query = query.where(Replay.status == status)
    if cursor is not None:
        at, last = _decode(cursor)
        query = query.where(tuple_(Replay.requested_at, Replay.id) < tuple_(at, last))
    query = query.order_by(Replay.requested_at.desc(), Replay.id.desc()).limit(limit + 1)
    rows = list((await session.execute(query)).scalars().all())
    more, rows = len(rows) > limit, rows[:limit]
    return rows, _encode(rows[-1]) if more and rows else None


def check_window(since: datetime | None, until: datetime | None, settings: Settings) -> None:
    if since is None:
        return
    span = (until or datetime.now(UTC)) - since
    bound = settings.replay_max_window_days
    if span > timedelta(days=bound):
        raise ReplayBoundError(
            f"the window is {span.total_seconds() / 86400:.1f} days; REPLAY_MAX_WINDOW_DAYS is "
            f"{bound}: replay a shorter window",
            details={"bound": "REPLAY_MAX_WINDOW_DAYS", "limit": bound},
        )


NARROW_REPLAY = "a shorter since/until window, a distribution, a status or a Braze user"


async def _bounded_count(
    session: AsyncSession, scope: BulkFilter | replay_scope.DistributionScope, *,
    last_id_of: Callable[[AsyncSession], Awaitable[int]], settings: Settings,
) -> tuple[int, int]:  # fmt: skip
    """The newest row id the replay covers and how many rows it takes up; refused past
    REPLAY_MAX_ROWS, and past OPS_STATEMENT_TIMEOUT_SECONDS (both statements)."""
    bound = settings.replay_max_rows
    async with bounded(session, settings.ops_statement_timeout_seconds, narrow=NARROW_REPLAY):
        last_id = await last_id_of(session)
        total = await replay_scope.count(session, scope, last_id=last_id, cap=bound + 1)
    if total > bound:
        raise ReplayBoundError(
            f"this covers more than {bound} rows; REPLAY_MAX_ROWS is {bound}: narrow it "
            "(a shorter window, a status, a distribution)",
            details={"bound": "REPLAY_MAX_ROWS", "limit": bound},
        )
    return last_id, total


async def _record(
    session: AsyncSession, *, kind: str, principal: OpsPrincipal, filter: dict[str, object],
    force: bool, total: int | None = None, last_id: int | None = None,
) -> Replay:  # fmt: skip
    background = last_id is not None
    replay = Replay(
        kind=kind, trigger="bulk" if kind == "bulk" else "manual", requested_by=principal.name,
        filter=filter, force=force, status=QUEUED if background else DONE, total=total,
        last_id=last_id, matched=0, queued=0, skipped={}, checkpoint=0,
    )  # fmt: skip
    session.add(replay)
    await session.flush()
    await session.refresh(replay)  # requested_at comes from the database
    return replay


def _encode(replay: Replay) -> str:
    raw = f"{replay.requested_at.isoformat()}|{replay.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()).decode()
        at, last = raw.split("|", 1)
        # A time Postgres could not compare with (year 0 in UTC) is no cursor of ours either.
        return bounded_time(datetime.fromisoformat(at)), uuid.UUID(last)
    except (ValueError, UnicodeDecodeError):
        raise BadCursorError("cursor is not one this API returned") from None
