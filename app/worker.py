"""Composition root of a delivery worker (`voucher-relay worker`, or inside `serve`): it waits
quietly for the schema this code needs, then runs every lane (`app.delivery.runner`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

import uvloop
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.db.schema import wait_until_current
from app.db.session import create_engine
from app.delivery.runner import run_worker
from app.delivery.stopping import stop_on

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


class ThreadWake:
    """The worker's wake-up event, which any thread may set (intake and replays set it when
    deliveries became ready to send)."""

    def __init__(self) -> None:
        self.event: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def set(self) -> None:
        loop, event = self.loop, self.event
        if loop is not None and event is not None and not loop.is_closed():
            loop.call_soon_threadsafe(event.set)


class WorkerThread:
    """`serve`'s delivery worker on a thread and event loop of its own. On the API's loop each
    round trip of a claim would wait behind every webhook request ready at that moment (tens of
    ms during a burst, though Postgres answers in milliseconds); on its own loop it waits at most
    for the interpreter to switch threads (5 ms)."""

    def __init__(self, settings: Settings, url: URL) -> None:
        self._settings, self._url = settings, url
        self.wake = ThreadWake()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._main, name="delivery-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._started.wait()

    async def stop(self) -> None:
        """Stop as `voucher-relay worker` does on SIGTERM (claims at once, sends after their
        grace), and wait for the thread."""
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(stopping.set)
        await asyncio.to_thread(self._thread.join)

    def _main(self) -> None:
        loop = uvloop.new_event_loop()  # the loop uvicorn serves with: cheaper socket I/O
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._run(loop))
        except Exception:
            logger.exception("the delivery worker stopped on an error")
        finally:
            self._started.set()
            loop.close()

    async def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        stop, self._stopping = asyncio.Event(), asyncio.Event()
        self.wake.event, self.wake.loop = asyncio.Event(), loop
        self._loop = loop
        self._started.set()
        engine = create_engine(self._url, self._settings)
        try:
            task = asyncio.create_task(
                run_when_schema_current(
                    self._settings, engine, stop, wake=self.wake.event,
                    announce=False,  # `serve` says it at start, for the API and the worker
                ),
                name="delivery-worker",
            )  # fmt: skip
            stopping = asyncio.ensure_future(self._stopping.wait())
            await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            await stop_on(stop, task, grace=self._settings.braze_timeout_seconds + 5)
        finally:
            await engine.dispose()
