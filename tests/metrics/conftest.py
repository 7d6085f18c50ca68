"""Metrics tests reuse the worker fixtures: the Braze emulator, an asyncpg pool, workers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import truncate_all
from tests.delivery.conftest import emulator, make_worker, pool

__all__ = ["emulator", "make_worker", "pool"]


@pytest.fixture
async def waiting(engine: AsyncEngine) -> AsyncIterator[None]:
    """Five pending deliveries, due one to five minutes ago."""
    async with engine.begin() as connection:
        await connection.execute(
            text("""
            WITH d AS (
                INSERT INTO distributions (name, triggers, code_source, identity, mapping)
                VALUES ('counted', '{customer.segment.entered}', '{}', '{}', '[]') RETURNING id
            )
            INSERT INTO deliveries (distribution_id, distribution_version, braze_user_key,
                attributes, next_attempt_at)
            SELECT d.id, 1, 'external_id:u-' || g, '{"code": "A"}',
                now() - g * interval '1 minute'
            FROM d, generate_series(1, 5) AS g
        """)
        )
    yield
    await truncate_all(engine)
