from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.db import migrate
from app.models import Base
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


def _run(url: URL, statement: str) -> list[tuple[object, ...]]:
    async def execute() -> list[tuple[object, ...]]:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as connection:
                await connection.execute(text("SET LOCAL TIME ZONE 'UTC'"))  # times read as text
                result = await connection.execute(text(statement))
                return [tuple(row) for row in result] if result.returns_rows else []
        finally:
            await engine.dispose()

    return asyncio.run(execute())


def test_0015_brings_event_times_far_ahead_back_to_when_they_were_received(
    empty_database: URL,
) -> None:
    """Rows stored before intake bounded event times: a year-9999 time would keep every later
    event of that user `stale` after the upgrade."""
    migrate.upgrade(empty_database, "0014")
    _run(empty_database, """
        WITH e AS (
            INSERT INTO webhook_events (voucherify_event_id, source_id, source_object, event_type,
                event_created_at, received_at, signature_result, outcome)
            VALUES ('ev_9999', 'wh_1', 'webhook', 'customer.segment.entered',
                    '9999-12-31T23:59:59Z', '2026-03-10T10:00:00Z', 'valid_raw', 'matched'),
                   ('ev_skew', 'wh_1', 'webhook', 'customer.segment.entered',
                    '2026-03-10T20:00:00Z', '2026-03-10T10:00:00Z', 'valid_raw', 'matched')
            RETURNING id, event_created_at
        ), x AS (
            INSERT INTO distributions (id, name, triggers, code_source, identity, mapping)
            VALUES (gen_random_uuid(), 'd', '{customer.segment.entered}', '{}', '{}', '[]')
            RETURNING id
        )
        INSERT INTO deliveries (distribution_id, distribution_version, event_id, braze_user_key,
            event_time, created_at)
        SELECT x.id, 1, e.id, 'external_id:u', e.event_created_at, '2026-03-10T10:00:01Z'
        FROM e, x
    """)  # fmt: skip
    _run(empty_database, """
        INSERT INTO attribute_state (braze_user_key, attribute, value, event_time, updated_at)
        VALUES ('external_id:u', 'code', '"A"', '9999-12-31T23:59:59Z', '2026-03-10T10:00:02Z'),
               ('external_id:u', 'other', '"B"', '2026-03-10T20:00:00Z', '2026-03-10T10:00:02Z')
    """)  # fmt: skip

    migrate.upgrade(empty_database)

    events = _run(empty_database, "SELECT voucherify_event_id, event_created_at::text"
                                  " FROM webhook_events ORDER BY 1")  # fmt: skip
    assert events == [
        ("ev_9999", "2026-03-10 10:00:00+00"), ("ev_skew", "2026-03-10 20:00:00+00")
    ]  # fmt: skip
    deliveries = _run(empty_database, "SELECT event_time::text FROM deliveries ORDER BY id")
    assert deliveries == [("2026-03-10 10:00:00+00",), ("2026-03-10 20:00:00+00",)]
    state = _run(empty_database, "SELECT attribute, event_time::text FROM attribute_state"
                                 " ORDER BY 1")  # fmt: skip
    assert state == [("code", "2026-03-10 10:00:02+00"), ("other", "2026-03-10 20:00:00+00")]
