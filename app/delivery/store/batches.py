"""Changing many waiting deliveries a batch at a time, whatever the change: a pause's, resume's
or delete's queue change (queue_change.py), a canceled replay's or run's withdrawal
(withdrawal.py).

One statement over a large backlog would hold its row locks for as long as it runs, and every
claim meeting one of them would wait. So the API marks what is to change and answers; the
change is carried out in batches of BATCH rows, each its own short transaction taking its rows
with SKIP LOCKED on a keyset (a batch starts after the last row of the one before, so it never
walks the index entries that earlier batches left dead), first by the API right after its
answer (`after_the_answer`) and by every worker's tending lane for what an API that died left.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

logger = logging.getLogger(__name__)

BATCH = 5000
# Set in each batch's transaction: the pick must walk its index in its order and stop at
# BATCH rows. With a large backlog the planner otherwise preferred a bitmap scan of every
# waiting row and a sort (0.58 s a batch at 500,000 waiting instead of milliseconds).
IN_INDEX_ORDER = "SET LOCAL enable_bitmapscan = off; SET LOCAL enable_sort = off"

Key = TypeVar("Key")
# One batch after a key: (rows changed, the key to start the next one at), or None when
# there is nothing (any more) to change.
Batch = Callable[[Key], Awaitable[tuple[int, Key] | None]]


async def to_the_end(batch: Batch[Key], start: Key) -> int:
    """Run `batch` from `start`, each after the last, until one changes nothing; rows changed."""
    total, after = 0, start
    while (done := await batch(after)) is not None:
        changed, after = done
        total += changed
        if not changed:
            break
    return total


async def after_the_answer(
    engine: AsyncEngine, work: Callable[[asyncpg.Connection], Awaitable[int]], *, what: str
) -> None:
    """`work` (batches to the end) on a connection of the API's engine, once the answer is sent.
    A failure is only logged: the workers' tending lane carries the change on."""
    try:
        async with engine.connect() as connection:
            raw = await connection.get_raw_connection()
            changed = await work(raw.driver_connection)
            await connection.rollback()  # nothing of SQLAlchemy's own is open; end it cleanly
    except Exception as exc:  # the answer is sent already: there is nobody to tell but the log
        logger.warning(
            "%s interrupted (%s); the workers' tending lane carries it on",
            what, type(exc).__name__,
        )  # fmt: skip
        return
    logger.info("%s done, %d rows", what, changed)
