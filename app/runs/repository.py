"""Run queries of the API (the worker's own, on asyncpg, are in `store.py`)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.runs.models import Run
from app.runs.progress import PROGRESS_SQL


def runs_query(*, distribution_id: uuid.UUID | None, status: str | None) -> Select[Run]:
    query = select(Run)
    if distribution_id is not None:
        query = query.where(Run.distribution_id == distribution_id)
    if status is not None:
        query = query.where(Run.status == status)
    return query


async def get_for_update(session: AsyncSession, run_id: int) -> Run | None:
    """The run, locked: a worker claiming it waits, then sees what we decided."""
    return await session.get(Run, run_id, with_for_update=True)


async def delivery_tallies(
    session: AsyncSession, run_ids: Sequence[int]
) -> dict[int, list[dict[str, Any]]]:
    """The grouped delivery rows of each run (see `progress.summarize`)."""
    if not run_ids:
        return {}
    statement = text(PROGRESS_SQL.format(ids="CAST(:ids AS bigint[])"))
    result = await session.execute(statement, {"ids": list(run_ids)})
    tallies: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in result.mappings():
        tallies[row["run_id"]].append(dict(row))
    return tallies
