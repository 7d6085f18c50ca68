from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from app.braze.classify import Classification, Kind
from app.delivery.coalesce import UserUpdate
from app.delivery.outcomes import settle

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
SCHEDULE = (timedelta(seconds=5), timedelta(minutes=1))
UPDATES = [UserUpdate("external_id:a", {}, [1, 2]), UserUpdate("external_id:b", {}, [3])]


def run(
    classification: Classification, attempts: dict[int, int] | None = None
) -> dict[int, tuple[str, str, bool]]:
    changes = settle(
        classification=classification, updates=UPDATES, attempts=attempts or {}, now=NOW,
        schedule=SCHEDULE, jitter=0, rng=random.Random(1),
    )  # fmt: skip
    return {c.delivery_id: (c.status, c.outcome, c.counts_as_attempt) for c in changes}


def test_delivered_with_an_indexed_error_fails_only_that_object() -> None:
    result = run(Classification(Kind.DELIVERED, 2, 201, failed={1: "bad value"}))
    assert result == {
        1: ("delivered", "delivered", True),
        2: ("delivered", "delivered", True),
        3: ("failed", "failed", True),
    }


def test_rate_limited_waits_without_using_an_attempt() -> None:
    changes = settle(
        classification=Classification(Kind.RATE_LIMITED, 2, 429, retry_after=timedelta(seconds=7)),
        updates=UPDATES, attempts={}, now=NOW, schedule=SCHEDULE,
    )  # fmt: skip
    assert {c.status for c in changes} == {"pending"}
    assert {c.next_attempt_at for c in changes} == {NOW + timedelta(seconds=7)}
    assert not any(c.counts_as_attempt for c in changes)


def test_retry_follows_the_schedule_then_dies() -> None:
    first = settle(classification=Classification(Kind.RETRY, 2, 503), updates=UPDATES,
                   attempts={}, now=NOW, schedule=SCHEDULE, jitter=0)  # fmt: skip
    assert {c.next_attempt_at for c in first} == {NOW + timedelta(seconds=5)}
    last = run(Classification(Kind.RETRY, 2, 503), attempts={1: 2, 2: 0, 3: 2})
    assert last[1][0] == "dead" and last[2][0] == "pending" and last[3][0] == "dead"


def test_a_batch_that_failed_together_is_due_again_together() -> None:
    """With jitter, every delivery of one failed request gets the same next attempt time, so
    the retry goes out as one request again instead of one per jitter draw."""
    for seed in range(20):
        changes = settle(classification=Classification(Kind.RETRY, 2, 503), updates=UPDATES,
                         attempts={}, now=NOW, schedule=SCHEDULE, jitter=0.5,
                         rng=random.Random(seed))  # fmt: skip
        (due,) = {c.next_attempt_at for c in changes}
        assert due is not None
        assert NOW + timedelta(seconds=2.5) <= due <= NOW + timedelta(seconds=7.5)


def test_separate_requests_still_spread_apart() -> None:
    rng = random.Random(3)
    dues = {
        settle(classification=Classification(Kind.RETRY, 2, 503), updates=UPDATES, attempts={},
               now=NOW, schedule=SCHEDULE, jitter=0.5, rng=rng)[0].next_attempt_at
        for _ in range(10)
    }  # fmt: skip
    assert len(dues) == 10


def test_config_error_keeps_everything_pending_without_attempts() -> None:
    result = run(Classification(Kind.CONFIG_ERROR, 2, 401))
    assert set(result.values()) == {("pending", "blocked", False)}


def test_rejected_fails_the_named_object_and_resends_the_others() -> None:
    result = run(Classification(Kind.REJECTED, 2, 400, failed={0: "Invalid"}))
    assert result[1] == ("failed", "failed", True) and result[2] == ("failed", "failed", True)
    assert result[3] == ("pending", "retry", False)


def test_a_5xx_with_retry_after_is_not_retried_before_braze_says() -> None:
    busy = Classification(Kind.RETRY, 2, 503, retry_after=timedelta(minutes=2))
    changes = settle(classification=busy, updates=UPDATES, attempts={}, now=NOW,
                     schedule=SCHEDULE, jitter=0)  # fmt: skip
    assert {c.next_attempt_at for c in changes} == {NOW + timedelta(minutes=2)}
    assert all(c.counts_as_attempt for c in changes)
