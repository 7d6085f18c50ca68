"""Composition root of a delivery worker (`voucher-relay worker`, also run by `serve` as its
child): it waits quietly for the schema this code needs, then runs every lane
(`app.worker.runner`)."""

from __future__ import annotations

import asyncio
import logging
import os

from sqlalchemy.ext.asyncio import AsyncEngine

# Every table in the ORM's metadata: the lanes query deliveries through the ORM, and its
# foreign keys name runs, replays and braze_requests, whose models nothing else here loads
# (the worker child of `serve` failed every bulk replay batch on deliveries.run_id).
from app import models as _every_table  # noqa: F401
from app.config import Settings
from app.db.schema import wait_until_current
from app.worker.runner import run_worker

logger = logging.getLogger(__name__)


async def run_when_schema_current(
    settings: Settings,
    engine: AsyncEngine,
    stop: asyncio.Event,
    *,
    wake: asyncio.Event | None = None,
    announce: bool = True,
) -> None:
    """Run the worker until `stop`; before that, wait (one log line, no failing cycles) while
    the database is not migrated to this code's revision. `announce=False`: the caller has
    said so already (`serve` does, at start)."""
    if await wait_until_current(engine, stop, announce=announce):
        await run_worker(settings, engine.url, stop, wake=wake)


def listen_to_parent(
    loop: asyncio.AbstractEventLoop, fd: int, *, wake: asyncio.Event, parent_gone: asyncio.Event
) -> None:
    """A child of `serve` (app.worker.supervisor): a byte on the pipe `fd` means deliveries are
    ready to send; end of file means `serve` has gone (a SIGKILL included), and the worker
    stops as it does on SIGTERM rather than deliver for a service nobody runs any more."""
    os.set_blocking(fd, False)

    def readable() -> None:
        try:
            data = os.read(fd, 4096)  # every byte written so far: one wake-up is enough
        except BlockingIOError:
            return
        if data:
            wake.set()
            return
        loop.remove_reader(fd)
        logger.warning("serve has gone: the delivery worker stops")
        parent_gone.set()

    loop.add_reader(fd, readable)
