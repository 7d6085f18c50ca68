"""The pure pieces of the client's pacing: waits read from a 429, backoff, the rate budget."""

from __future__ import annotations

from email.utils import formatdate

import httpx
import pytest

from app.voucherify.ratelimit import RateBudget
from app.voucherify.retry import (
    backoff_delay,
    is_retryable_status,
    rate_limit_wait,
    reschedule_after_429,
)
from tests.voucherify.fakes import FakeClock

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"Retry-After": "0.5"}, 0.5),
        ({"retry-after": formatdate(NOW + 10, usegmt=True)}, 10.0),
        ({"X-Rate-Limit-Retry": str(int(NOW) + 42)}, 42.0),
        ({"X-Rate-Limit-Retry": str(int(NOW * 1000) + 1500)}, 1.5),
        ({"X-Rate-Limit-Retry": str(int(NOW) - 5)}, 0.0),
        ({"Retry-After": "3", "X-Rate-Limit-Retry": str(int(NOW) + 60)}, 3.0),
        ({"Retry-After": "soon", "X-Rate-Limit-Retry": str(int(NOW) + 9)}, 9.0),
        ({"Retry-After": "nan"}, None),
        ({}, None),
    ],
    ids=[
        "retry-after",
        "retry-after-fraction",
        "retry-after-http-date",
        "next-allowed-unix-second",
        "next-allowed-unix-millisecond",
        "next-allowed-passed",
        "retry-after-wins",
        "unreadable-retry-after-falls-back",
        "not-a-number",
        "no-hint",
    ],
)
def test_rate_limit_wait_reads_retry_after_then_x_rate_limit_retry(
    headers: dict[str, str], wait: float | None
) -> None:
    assert rate_limit_wait(httpx.Headers(headers), now=NOW) == wait


@pytest.mark.parametrize(
    ("asked", "wait"), [(3600.0, 3600.0), (45.0, 45.0), (2.0, 30.0), (None, 30.0)]
)
def test_a_rescheduled_run_or_delivery_waits_what_voucherify_asked_and_at_least_30_s(
    asked: float | None, wait: float
) -> None:
    assert reschedule_after_429(asked) == wait


def test_backoff_doubles_from_the_base_and_stops_at_the_cap() -> None:
    delays = [backoff_delay(attempt=n, base=0.5, cap=3) for n in range(1, 6)]
    assert delays == [0.5, 1.0, 2.0, 3.0, 3.0]
    with pytest.raises(ValueError, match="from 1"):
        backoff_delay(attempt=0)


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (500, True),
        (502, True),
        (503, True),
        (504, True),
        (501, False),
        (505, False),
        (404, False),
        (429, False),
    ],
)
def test_only_temporary_server_errors_are_retryable(status: int, retryable: bool) -> None:
    assert is_retryable_status(status) is retryable


async def test_budget_lets_a_burst_through_then_waits_for_the_oldest_to_leave_the_window() -> None:
    clock = FakeClock(NOW)
    budget = RateBudget(requests=3, window_seconds=60, clock=clock, sleep=clock.sleep)
    waits = [await budget.acquire() for _ in range(3)]
    clock.now += 20
    waits.append(await budget.acquire())
    assert waits == [0, 0, 0, 40]


async def test_budget_blocked_until_a_time_waits_for_it_and_only_later_times_extend_it() -> None:
    clock = FakeClock(NOW)
    budget = RateBudget(requests=100, clock=clock, sleep=clock.sleep)
    budget.block_until(NOW + 30)
    budget.block_until(NOW + 10)
    assert await budget.acquire() == 30
    assert await budget.acquire() == 0


def test_budget_refuses_an_empty_budget() -> None:
    clock = FakeClock()
    with pytest.raises(ValueError, match="at least one"):
        RateBudget(requests=0, clock=clock, sleep=clock.sleep)
