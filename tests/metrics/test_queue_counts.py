"""The queue's counts stop at QUEUE_COUNT_CAP and say so: a scrape costs the same with a
million waiting; the oldest due age stays exact."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.metrics import collectors


async def test_counts_past_the_cap_report_the_cap_and_the_flag(
    engine: AsyncEngine, waiting: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(collectors, "QUEUE_COUNT_CAP", 3)
    snapshot = await collectors.DatabaseState(engine, workspace=None, max_age=0).read()
    assert (snapshot.queue["pending"], snapshot.due, snapshot.capped) == (3, 3, True)
    assert 5 * 60 <= snapshot.oldest_due_age < 6 * 60  # the oldest of all five, not of three
    families = {f.name: f for f in collectors.DatabaseCollector(snapshot).collect()}
    assert families["voucher_relay_queue_count_capped"].samples[0].value == 1


async def test_counts_under_the_cap_are_exact_and_not_flagged(
    engine: AsyncEngine, waiting: None
) -> None:
    snapshot = await collectors.DatabaseState(engine, workspace=None, max_age=0).read()
    assert (snapshot.queue["pending"], snapshot.due, snapshot.capped) == (5, 5, False)
