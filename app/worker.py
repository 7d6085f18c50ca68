"""Composition root of a delivery worker (`voucher-relay worker`, or inside `serve`): it waits
quietly for the schema this code needs, then runs every lane (`app.delivery.runner`)."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.db.schema import wait_until_current
from app.delivery.runner import run_worker


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
