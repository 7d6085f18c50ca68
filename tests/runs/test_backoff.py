"""The waits of a run while Voucherify is unavailable, and what RUN_MAX_FAILURES documents."""

from __future__ import annotations

import pytest

from app.config import Settings
from app.runs.backoff import give_up_message, paging_delay


def test_the_wait_starts_at_30_seconds_doubles_and_stops_at_10_minutes() -> None:
    assert [paging_delay(n) for n in range(1, 8)] == [30, 60, 120, 240, 480, 600, 600]
    assert paging_delay(10_000) == 600  # no overflow however long it lasts


def test_the_default_bound_gives_up_after_about_75_minutes_of_waiting() -> None:
    bound = Settings(_env_file=None).run_max_failures
    waited = sum(paging_delay(n) for n in range(1, bound))  # no wait after the last failure
    assert bound == 12 and 74 * 60 < waited < 76 * 60


def test_failures_count_from_one() -> None:
    with pytest.raises(ValueError):
        paging_delay(0)


def test_the_give_up_message_says_why_how_many_tries_and_what_to_do() -> None:
    message = give_up_message(42, 12, last_error="Voucherify answered 503 four times")
    assert "unavailable 12 times in a row" in message
    assert "Voucherify answered 503 four times" in message
    assert "POST /api/v1/runs/42/resume" in message
