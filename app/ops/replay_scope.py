"""Which rows a distribution or bulk replay covers: ONE set of conditions per kind, used by the
plan, the bounds check and the execution alike, so the plan's count is what the replay works
through (as long as nothing else changes those rows in between).

A replay covers the rows matching its conditions with ids up to the largest id when it was
asked (`last_id`): rows that arrive later are not swept in, however long it runs.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.delivery.models import DEAD, DELIVERED, FAILED, SKIPPED, Delivery
from app.ops.replay_schemas import BulkFilter, ReplayPlan
from app.webhooks.models import WebhookEvent

SETTLED = (DELIVERED, SKIPPED, FAILED, DEAD)
SAMPLE = 20


class DistributionScope(BaseModel):
    """A distribution replay: the events of its triggers (as they were when asked) in a window."""

    distribution_id: uuid.UUID
    triggers: list[str]
    since: datetime
    until: datetime


def bulk_conditions(scope: BulkFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [
        Delivery.status.in_([scope.status] if scope.status else SETTLED)
    ]
    if scope.distribution_id is not None:
        conditions.append(Delivery.distribution_id == scope.distribution_id)
    if scope.braze_user_key is not None:
        conditions.append(Delivery.braze_user_key == scope.braze_user_key)
    if scope.since is not None:
        conditions.append(Delivery.created_at >= scope.since)
    if scope.until is not None:
        conditions.append(Delivery.created_at < scope.until)
    if scope.event_type is not None:
        of_type = select(WebhookEvent.id).where(WebhookEvent.event_type == scope.event_type)
        conditions.append(Delivery.event_id.in_(of_type))
    return conditions


def event_conditions(scope: DistributionScope) -> list[ColumnElement[bool]]:
    return [
        WebhookEvent.event_type.in_(scope.triggers),
        WebhookEvent.received_at >= scope.since,
        WebhookEvent.received_at < scope.until,
    ]


async def last_delivery_id(session: AsyncSession) -> int:
    return (await session.execute(select(func.coalesce(func.max(Delivery.id), 0)))).scalar_one()


async def last_event_id(session: AsyncSession) -> int:
    query = select(func.coalesce(func.max(WebhookEvent.id), 0))
    return (await session.execute(query)).scalar_one()


async def count(
    session: AsyncSession, scope: BulkFilter | DistributionScope, *, last_id: int, cap: int
) -> int:
    """Rows covered, counting no further than `cap` (enough to tell a bound was passed)."""
    if isinstance(scope, BulkFilter):
        ids = select(Delivery.id).where(*bulk_conditions(scope), Delivery.id <= last_id)
    else:
        ids = select(WebhookEvent.id).where(*event_conditions(scope), WebhookEvent.id <= last_id)
    capped = ids.limit(cap).subquery()
    return (await session.execute(select(func.count()).select_from(capped))).scalar_one()


async def plan(session: AsyncSession, scope: BulkFilter, *, last_id: int) -> ReplayPlan:
    """What a bulk replay of `scope` asked now would take up; reads only."""
    where = [*bulk_conditions(scope), Delivery.id <= last_id]

    async def grouped(column: Any) -> dict[str, int]:
        query = select(column, func.count()).where(*where).group_by(column)
        return {str(key): n for key, n in (await session.execute(query)).all()}

    by_status = await grouped(Delivery.status)
    sample = select(Delivery.id).where(*where).order_by(Delivery.id).limit(SAMPLE)
    return ReplayPlan(
        count=sum(by_status.values()),
        by_distribution=await grouped(Delivery.distribution_id),
        by_status=by_status,
        sample_ids=list((await session.execute(sample)).scalars().all()),
    )


async def delivery_batch(
    session: AsyncSession, scope: BulkFilter, *, after: int, last_id: int, limit: int
) -> Sequence[Delivery]:
    """The next deliveries in id order, locked (a concurrent replay of one waits)."""
    query = (
        select(Delivery)
        .where(*bulk_conditions(scope), Delivery.id > after, Delivery.id <= last_id)
        .order_by(Delivery.id)
        .limit(limit)
        .with_for_update(of=Delivery)
    )
    return (await session.execute(query)).scalars().all()


async def event_batch(
    session: AsyncSession, scope: DistributionScope, *, after: int, last_id: int, limit: int
) -> Sequence[WebhookEvent]:
    """The next events in id order, locked (an event replay of one of them waits)."""
    query = (
        select(WebhookEvent)
        .where(*event_conditions(scope), WebhookEvent.id > after, WebhookEvent.id <= last_id)
        .order_by(WebhookEvent.id)
        .limit(limit)
        .with_for_update()
    )
    return (await session.execute(query)).scalars().all()
