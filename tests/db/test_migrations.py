from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.db import migrate
from app.db.models import Base
from tests.postgres import scratch_database


@pytest.fixture
def empty_database(server_url: URL) -> Iterator[URL]:
    with scratch_database(server_url, prefix="vr_migrations") as url:
        yield url


def _tables(url: URL) -> set[str]:
    async def read() -> set[str]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
        finally:
            await engine.dispose()

    return asyncio.run(read())


# Synchronous on purpose: alembic runs its own event loop, which cannot nest in the test's.
def test_migrations_upgrade_downgrade_and_upgrade_again(empty_database: URL) -> None:
    migrate.upgrade(empty_database)
    expected = set(Base.metadata.tables) | {"alembic_version"}
    assert _tables(empty_database) == expected

    migrate.downgrade(empty_database, "base")
    assert _tables(empty_database) == {"alembic_version"}

    migrate.upgrade(empty_database)
    assert _tables(empty_database) == expected


async def test_models_and_migrations_agree(engine: AsyncEngine) -> None:
    def diff(connection: object) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})  # type: ignore[arg-type]
        return list(compare_metadata(context, Base.metadata))

    async with engine.connect() as connection:
        differences = await connection.run_sync(diff)
    assert differences == []
