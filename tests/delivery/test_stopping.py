"""Idle waits leave nothing behind, and end as soon as the worker is asked to stop."""

from __future__ import annotations

import asyncio

from app.delivery.stopping import wait_unless_stopped


async def test_idle_waits_leave_no_pending_task_behind() -> None:
    stop = asyncio.Event()
    before = len(asyncio.all_tasks())
    for _ in range(50):
        await wait_unless_stopped(stop, 0.001)
    assert len(asyncio.all_tasks()) == before


async def test_a_set_stop_ends_the_wait_at_once() -> None:
    stop = asyncio.Event()
    waiting = asyncio.create_task(wait_unless_stopped(stop, 3600))
    await asyncio.sleep(0)
    stop.set()
    await asyncio.wait_for(waiting, 5)  # would time out if the wait ignored `stop`
    assert waiting.done()
