"""Talking to a running relay and its Braze emulator from a scenario: distributions in, queue
and profiles out."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import httpx

from bench.events import Applied, distributions

QUEUE_LEFT = "SELECT count(*) FROM deliveries WHERE status IN ('pending', 'in_flight')"


def create_distributions(port: int, token: str) -> None:
    for body in distributions():
        created = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/distributions", json=body,
            headers={"Authorization": f"Bearer {token}"}, timeout=30,
        )  # fmt: skip
        created.raise_for_status()


async def _fetch(database: str, sql: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(database)
    try:
        return list(await connection.fetch(sql))
    finally:
        await connection.close()


def query(database: str, sql: str) -> list[asyncpg.Record]:
    return asyncio.run(_fetch(database, sql))


def scalar(database: str, sql: str) -> Any:
    return query(database, sql)[0][0]


def status_counts(database: str) -> dict[str, int]:
    """Deliveries by status."""
    rows = query(database, "SELECT status, count(*) FROM deliveries GROUP BY status")
    return {row[0]: row[1] for row in sorted(rows)}


def applied_objects(braze_url: str) -> list[Applied]:
    """Every object the emulator applied, in order (it runs with BENCH_BRAZE_RECORD=1)."""
    items = httpx.get(f"{braze_url}/_bench/applied", timeout=60).json()
    return [Applied(user, attributes, at) for user, attributes, at in items]


def profiles(braze_url: str) -> dict[str, dict[str, Any]]:
    answer: dict[str, dict[str, Any]] = httpx.get(
        f"{braze_url}/_emulator/profiles", timeout=60
    ).json()
    return answer
