from __future__ import annotations

import random
from datetime import timedelta

import pytest

from app.retry import DEFAULT_SCHEDULE, format_schedule, parse_schedule, retry_delay


def test_first_retry_waits_five_seconds_without_jitter() -> None:
    assert retry_delay(attempt=1, jitter=0) == timedelta(seconds=5)


def test_default_schedule_never_shortens_from_one_attempt_to_the_next() -> None:
    delays = [retry_delay(attempt=n, jitter=0) for n in range(1, len(DEFAULT_SCHEDULE) + 1)]
    assert all(d is not None for d in delays)
    assert delays == sorted(delays)  # type: ignore[type-var]


def test_default_schedule_spans_about_a_day() -> None:
    total = sum(DEFAULT_SCHEDULE, timedelta())
    assert timedelta(hours=23, minutes=30) <= total <= timedelta(hours=24, minutes=30)
    assert DEFAULT_SCHEDULE[0] <= timedelta(seconds=10)
    assert DEFAULT_SCHEDULE[-1] >= timedelta(hours=4)


def test_schedule_is_exhausted_after_its_last_step() -> None:
    last = len(DEFAULT_SCHEDULE)
    assert retry_delay(attempt=last, jitter=0) == DEFAULT_SCHEDULE[-1]
    assert retry_delay(attempt=last + 1) is None
    assert retry_delay(attempt=1, schedule=()) is None


@pytest.mark.parametrize("attempt", range(1, len(DEFAULT_SCHEDULE) + 1))
def test_jitter_stays_within_its_bounds_and_varies(attempt: int) -> None:
    rng = random.Random(attempt)
    base = DEFAULT_SCHEDULE[attempt - 1]
    delays = {retry_delay(attempt=attempt, jitter=0.2, rng=rng) for _ in range(200)}
    assert all(d is not None and base * 0.8 <= d <= base * 1.2 for d in delays)
    assert len(delays) > 100


def test_same_seed_gives_the_same_delays() -> None:
    first = [retry_delay(attempt=n, rng=random.Random(7)) for n in range(1, 12)]
    second = [retry_delay(attempt=n, rng=random.Random(7)) for n in range(1, 12)]
    assert first == second


def test_a_given_schedule_replaces_the_default() -> None:
    schedule = parse_schedule("1s,2s")
    assert retry_delay(attempt=2, schedule=schedule, jitter=0) == timedelta(seconds=2)
    assert retry_delay(attempt=3, schedule=schedule, jitter=0) is None


@pytest.mark.parametrize("attempt", [0, -1])
def test_attempts_count_from_one(attempt: int) -> None:
    with pytest.raises(ValueError, match="from 1"):
        retry_delay(attempt=attempt)


@pytest.mark.parametrize("jitter", [-0.1, 1.0, 2.0])
def test_jitter_outside_zero_to_one_is_refused(jitter: float) -> None:
    with pytest.raises(ValueError, match="jitter"):
        retry_delay(attempt=1, jitter=jitter)


def test_schedule_string_reads_seconds_minutes_hours_and_days() -> None:
    assert parse_schedule("5s, 30s,2M ,1.5h,1d,45") == (
        timedelta(seconds=5),
        timedelta(seconds=30),
        timedelta(minutes=2),
        timedelta(minutes=90),
        timedelta(days=1),
        timedelta(seconds=45),
    )


@pytest.mark.parametrize("text", ["", "5x", "0s", "-5s", "5s,,2m", "five"])
def test_bad_schedule_string_names_the_bad_step(text: str) -> None:
    with pytest.raises(ValueError, match="retry schedule step"):
        parse_schedule(text)


def test_default_schedule_round_trips_through_its_string_form() -> None:
    text = format_schedule(DEFAULT_SCHEDULE)
    assert text == "5s,30s,2m,5m,15m,30m,1h,2h,4h,8h,8h"
    assert parse_schedule(text) == DEFAULT_SCHEDULE
