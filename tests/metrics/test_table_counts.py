"""`voucher_relay_deliveries` counts the whole table: off the scrape's path, as seldom as its
cost requires (app/metrics/collectors.py)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.metrics import collectors


@pytest.fixture
async def state(engine: AsyncEngine) -> AsyncIterator[collectors.DatabaseState]:
    state = collectors.DatabaseState(engine, workspace=None, max_age=0, table_max_age=0)
    yield state
    await state.close()


async def test_a_count_that_cannot_finish_does_not_hold_up_the_scrape(
    engine: AsyncEngine, waiting: None, state: collectors.DatabaseState
) -> None:
    async with engine.connect() as holder, holder.begin():
        # The count waits behind this lock as it would behind a scan of ten million rows.
        await holder.execute(text("LOCK TABLE deliveries IN ACCESS EXCLUSIVE MODE"))
        # The queue's own reads would wait for the lock too: only the count is tried here. The
        # count cannot finish while this transaction holds the lock, so returning at all shows
        # that the scrape did not wait for it.
        await state._table_counted(time.monotonic())
        assert state._table == {}
        assert state._counting is not None  # still running, in the background
    # Once the lock is gone the count finishes; the next scrape reports it.
    snapshot = await state.read()
    assert snapshot.deliveries == {("pending", ""): 5}
    assert state._counting is None


async def test_a_slow_count_is_repeated_a_hundred_times_less_often_than_it_takes(
    engine: AsyncEngine, waiting: None, state: collectors.DatabaseState,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setattr(collectors, "TABLE_COUNT_WAIT_SECONDS", 0.0)  # every count is "slow"
    before = time.monotonic()
    await state.read()
    counting = state._counting
    if counting is not None:
        await counting
    after = time.monotonic()
    took = after - before
    assert state._table == {("pending", ""): 5}
    assert before < state._table_due <= before + collectors.TABLE_COUNT_PERIOD_FACTOR * took
    assert state._table_due > after  # not counted again at once, although table_max_age is 0


async def test_a_quick_count_is_repeated_after_table_max_age(
    engine: AsyncEngine, waiting: None, state: collectors.DatabaseState
) -> None:
    first = await state.read()
    async with engine.begin() as connection:
        await connection.execute(text("UPDATE deliveries SET status = 'dead'"))
    second = await state.read()
    assert first.deliveries == {("pending", ""): 5}
    assert second.deliveries == {("dead", ""): 5}


async def test_without_table_counts_the_table_is_never_counted(
    engine: AsyncEngine, waiting: None
) -> None:
    state = collectors.DatabaseState(engine, workspace=None, max_age=0, table_counts=False)
    snapshot = await state.read()
    assert snapshot.deliveries == {} and state._counting is None
