"""Ops reads and bulk replay counts past OPS_STATEMENT_TIMEOUT_SECONDS: 503 filter_too_slow."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from tests.conftest import READER, WRITER, committing_app_client


@pytest.fixture
async def slow_client(settings: Settings, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    quick = settings.model_copy(update={"ops_statement_timeout_seconds": 0.2})
    async with committing_app_client(quick, engine) as client:
        yield client


@pytest.fixture
async def locker(database_url: URL) -> AsyncIterator[asyncpg.Connection]:
    """A connection that can hold a table, so that any read of it waits past the timeout (a
    statement timeout counts the time waiting for a lock like the time reading)."""
    connection = await asyncpg.connect(
        host=database_url.query.get("host") or database_url.host, port=database_url.port,
        user=database_url.username, database=database_url.database,
    )  # fmt: skip
    yield connection
    await connection.close()


@pytest.mark.parametrize(
    ("path", "table", "names"),
    [
        ("/api/v1/events?since=2026-01-01T00:00:00Z", "webhook_events", "?customer="),
        ("/api/v1/deliveries?status=delivered", "deliveries", "?braze_user_key="),
    ],
)
async def test_a_list_past_the_statement_timeout_answers_filter_too_slow_naming_what_narrows_it(
    slow_client: httpx.AsyncClient, locker: asyncpg.Connection, path: str, table: str,
    names: str,
) -> None:  # fmt: skip
    async with locker.transaction():
        await locker.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        async with asyncio.timeout(30):  # a statement left unbounded would wait for good
            answer = await slow_client.get(path, headers=READER)
    assert answer.status_code == 503, answer.text
    error = answer.json()["error"]
    assert error["code"] == "filter_too_slow"
    assert "OPS_STATEMENT_TIMEOUT_SECONDS (0.2 s)" in error["message"]
    assert names in error["message"]
    # The next request is served: the timeout was the request's alone.
    assert (await slow_client.get(path, headers=READER)).status_code == 200


async def test_a_bulk_replay_plan_past_the_statement_timeout_answers_filter_too_slow(
    slow_client: httpx.AsyncClient, locker: asyncpg.Connection
) -> None:
    body = {"since": "2026-01-01T00:00:00Z", "until": "2026-01-02T00:00:00Z"}
    async with locker.transaction():
        await locker.execute("LOCK TABLE deliveries IN ACCESS EXCLUSIVE MODE")
        async with asyncio.timeout(30):  # a statement left unbounded would wait for good
            answer = await slow_client.post(
                "/api/v1/replays/plan", json={"filter": body}, headers=WRITER
            )
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "filter_too_slow"
    assert "a shorter since/until window" in answer.json()["error"]["message"]
