"""How the worker's lanes stop: idle waits and database work end at once when the worker is
asked to stop; only Braze requests already on their way get a grace period to finish and be
recorded (a request cut off is sent again later, and Braze bills it twice)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


async def wait_unless_stopped(stop: asyncio.Event, seconds: float) -> None:
    """Sleep up to `seconds`, returning at once when `stop` is set. wait_for cancels its waiter
    on timeout; `asyncio.wait([...])` would leave one pending task behind per idle poll."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def unless_stopped(stop: asyncio.Event, work: Awaitable[T]) -> T | None:
    """`work`'s result, or None when `stop` is set first: the work is then canceled (a claim,
    a page of a run, a batch of a replay: each rolls back or is taken up again later)."""
    task = asyncio.ensure_future(work)
    if not stop.is_set():
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
    if task.done():
        return task.result()  # finished work is never dropped (a claim's leases, say)
    await _cancel(task)
    return None


async def _cancel(task: asyncio.Future[T]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


async def stop_on(event: asyncio.Event, task: asyncio.Task[None], *, grace: float) -> None:
    """Ask the worker to stop: database work is canceled at once, Braze requests on their way
    get `grace` seconds to finish and be recorded; then whatever is left is canceled."""
    event.set()
    logger.info("worker stopping: requests to Braze on their way get up to %g s", grace)
    try:
        await asyncio.wait_for(asyncio.shield(task), grace)
    except TimeoutError:
        logger.warning(
            "worker still busy after %g s: canceling it (the leases of what it held expire and "
            "are taken back)", grace,
        )  # fmt: skip
        await _cancel(task)
