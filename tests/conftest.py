"""Fixtures: a real Postgres migrated by alembic once per session, one rolled-back transaction
per test, and the app wired to that transaction."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine

from app.config import Settings
from app.db import migrate
from app.db.session import get_session
from app.main import create_app
from app.models import Base
from tests.postgres import provide_server, scratch_database

# Property tests: `ci` (the default) is bounded and derandomized, so `make test` is reproducible
# and quick; HYPOTHESIS_PROFILE=dev searches ten times harder and keeps failures in .hypothesis/.
hypothesis_settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
hypothesis_settings.register_profile(
    "dev", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def server_url() -> Iterator[URL]:
    with tempfile.TemporaryDirectory(prefix="vr-test-pg-") as tmp, provide_server(Path(tmp)) as url:
        yield url


@pytest.fixture(scope="session")
def database_url(server_url: URL) -> Iterator[URL]:
    with scratch_database(server_url) as url:
        migrate.upgrade(url)
        yield url


@pytest.fixture(scope="session")
async def engine(database_url: URL) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url, pool_size=5)
    yield engine
    await engine.dispose()


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection inside a transaction that is rolled back when the test ends."""
    async with engine.connect() as connection:
        transaction = await connection.begin()
        try:
            yield connection
        finally:
            await transaction.rollback()


@pytest.fixture
async def session(connection: AsyncConnection) -> AsyncIterator[AsyncSession]:
    # Commits inside the code under test become savepoints of the test's transaction.
    async with AsyncSession(
        bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    ) as session:
        yield session


WRITE_TOKEN = "test-write-token"
READ_TOKEN = "test-read-token"
WRITER = {"Authorization": f"Bearer {WRITE_TOKEN}"}
READER = {"Authorization": f"Bearer {READ_TOKEN}"}


@pytest.fixture
def settings() -> Settings:
    return Settings(
        _env_file=None,
        ops_api_tokens=f"ops-team:write:{WRITE_TOKEN},grafana:read:{READ_TOKEN}",
        voucherify_webhook_secret="test-webhook-secret",
    )


@pytest.fixture
async def app(
    settings: Settings, engine: AsyncEngine, session: AsyncSession
) -> AsyncIterator[FastAPI]:
    app = create_app(settings, engine=engine)

    async def _test_session() -> AsyncIterator[AsyncSession]:
        yield session
        await session.commit()

    app.dependency_overrides[get_session] = _test_session
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def truncate_all(engine: AsyncEngine) -> None:
    tables = ", ".join(Base.metadata.tables)
    async with engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@asynccontextmanager
async def committing_app_client(
    settings: Settings, engine: AsyncEngine
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app whose requests really commit; the tables are emptied afterwards."""
    app = create_app(settings, engine=engine)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                yield client
    finally:
        await truncate_all(engine)


@pytest.fixture
async def committing_client(
    settings: Settings, engine: AsyncEngine
) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose requests really commit (for concurrency); tables are emptied afterwards."""
    async with committing_app_client(settings, engine) as client:
        yield client
