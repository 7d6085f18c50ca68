"""Distribution queries."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.distributions.models import Distribution


async def get(session: AsyncSession, distribution_id: uuid.UUID) -> Distribution | None:
    return await session.get(Distribution, distribution_id)


async def get_live_by_name(session: AsyncSession, name: str) -> Distribution | None:
    query = select(Distribution).where(Distribution.name == name, Distribution.deleted_at.is_(None))
    return (await session.execute(query)).scalar_one_or_none()


async def list_all(
    session: AsyncSession,
    *,
    status: str | None = None,
    trigger: str | None = None,
    include_deleted: bool = False,
) -> Sequence[Distribution]:
    query = select(Distribution).order_by(Distribution.name, Distribution.created_at)
    if not include_deleted:
        query = query.where(Distribution.deleted_at.is_(None))
    if status is not None:
        query = query.where(Distribution.status == status)
    if trigger is not None:
        query = query.where(Distribution.triggers.contains([trigger]))
    return (await session.execute(query)).scalars().all()


async def active_for_trigger(session: AsyncSession, trigger: str) -> Sequence[Distribution]:
    """Live, active distributions listening to `trigger` (intake's lookup)."""
    query = select(Distribution).where(
        Distribution.deleted_at.is_(None),
        Distribution.status == "active",
        Distribution.triggers.contains([trigger]),
    )
    return (await session.execute(query)).scalars().all()
