"""Idle waits of the worker's lanes that end early when the worker is asked to stop."""

from __future__ import annotations

import asyncio
import contextlib


async def wait_unless_stopped(stop: asyncio.Event, seconds: float) -> None:
    """Sleep up to `seconds`, returning at once when `stop` is set. wait_for cancels its waiter
    on timeout; `asyncio.wait([...])` would leave one pending task behind per idle poll."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
