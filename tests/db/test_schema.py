"""Readiness tells the truth about the schema: not ready, with the reason and the command to
run, until the database is at the code's alembic head; the worker waits quietly meanwhile."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.config import Settings
from app.db import migrate
from app.db.schema import Revisions, code_revisions, judge, wait_until_current
from app.main import create_app
from tests.postgres import scratch_database

REVISIONS = Revisions(head="0012", known=frozenset({"0010", "0011", "0012"}))


def test_a_database_at_the_head_is_current() -> None:
    assert judge("0012", REVISIONS).ok


def test_a_database_never_migrated_names_the_command_to_run() -> None:
    state = judge(None, REVISIONS)
    assert not state.ok and state.problem is not None
    assert "not migrated" in state.problem and "voucher-relay migrate" in state.problem


def test_a_database_behind_names_both_revisions() -> None:
    problem = judge("0010", REVISIONS).problem
    assert problem is not None and "at revision 0010" in problem and "needs 0012" in problem


def test_a_database_migrated_by_a_newer_release_keeps_old_processes_serving() -> None:
    assert judge("0013", REVISIONS).ok


def test_the_code_knows_its_head_from_the_migrations_folder() -> None:
    revisions = code_revisions()
    assert revisions.head in revisions.known and len(revisions.known) >= 12


@pytest.fixture
def unmigrated_url(server_url: URL) -> Iterator[URL]:
    with scratch_database(server_url, prefix="vr_unmigrated") as url:
        yield url


@pytest.fixture
async def unmigrated(unmigrated_url: URL) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(unmigrated_url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def _readyz(settings: Settings, engine: AsyncEngine) -> httpx.Response:
    app = create_app(settings, engine=engine)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get("/readyz")


async def test_readyz_is_503_on_a_database_never_migrated_until_it_is(
    settings: Settings, unmigrated: AsyncEngine
) -> None:
    before = await _readyz(settings, unmigrated)
    assert before.status_code == 503, before.text
    schema = before.json()["checks"]["schema"]
    assert schema["ok"] is False and schema["revision"] is None
    assert "voucher-relay migrate" in schema["error"]

    await asyncio.to_thread(migrate.upgrade, unmigrated.url)
    after = await _readyz(settings, unmigrated)
    assert after.status_code == 200, after.text
    assert after.json()["checks"]["schema"]["revision"] == code_revisions().head


async def test_an_api_call_on_a_database_never_migrated_answers_503_naming_migrate(
    settings: Settings, unmigrated: AsyncEngine
) -> None:
    app = create_app(settings, engine=unmigrated)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            answer = await client.get(
                "/api/v1/distributions", headers={"Authorization": "Bearer test-write-token"}
            )
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "schema_not_migrated"
    assert "voucher-relay migrate" in answer.json()["error"]["message"]


async def test_the_worker_waits_with_one_line_then_starts_once_migrated(
    unmigrated: AsyncEngine, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("app.db.schema.WAIT_POLL_SECONDS", 0.01)
    stop = asyncio.Event()
    with caplog.at_level(logging.INFO, logger="app.db.schema"):
        waiting = asyncio.create_task(wait_until_current(unmigrated, stop))
        # Many polls of the unmigrated database: still one line.
        for _ in range(20):
            await asyncio.sleep(0.01)
        assert not waiting.done()
        await asyncio.to_thread(migrate.upgrade, unmigrated.url)
        assert await asyncio.wait_for(waiting, 30) is True
    lines = [r.getMessage() for r in caplog.records if r.name == "app.db.schema"]
    assert len(lines) == 2, lines
    assert lines[0].startswith("the worker waits: the database schema is not migrated")
    assert lines[1].startswith("database schema at revision")


async def test_a_worker_told_to_stop_while_waiting_never_starts(unmigrated: AsyncEngine) -> None:
    stop = asyncio.Event()
    stop.set()
    assert await wait_until_current(unmigrated, stop) is False
