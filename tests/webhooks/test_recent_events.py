"""The inbox's memory of events stored in the last minutes (app/webhooks/recent_events.py)."""

from __future__ import annotations

from app.webhooks.group_commit import StoredEvent
from app.webhooks.recent_events import RecentEvents


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_remembered_event_is_answered_as_the_duplicate_the_database_would_answer() -> None:
    recent = RecentEvents(clock=Clock())
    recent.remember(("evt_1", "src"), 41, "matched")
    assert recent.duplicate(("evt_1", "src")) == StoredEvent(41, True, "matched", 0)
    assert recent.duplicate(("evt_1", "another source")) is None
    assert recent.duplicate(("evt_2", "src")) is None


def test_the_first_answer_stays_when_an_event_is_remembered_twice() -> None:
    recent = RecentEvents(clock=Clock())
    recent.remember(("evt_1", "src"), 41, "matched")
    recent.remember(("evt_1", "src"), 99, "ignored")
    assert recent.duplicate(("evt_1", "src")) == StoredEvent(41, True, "matched", 0)


def test_events_are_forgotten_after_their_ttl() -> None:
    clock = Clock()
    recent = RecentEvents(ttl=60, clock=clock)
    recent.remember(("old", "src"), 1, "matched")
    clock.now += 30
    recent.remember(("newer", "src"), 2, "matched")
    clock.now += 30
    assert recent.duplicate(("old", "src")) is None
    assert recent.duplicate(("newer", "src")) is not None
    assert len(recent) == 1  # the expired one is gone, not only hidden


def test_the_oldest_events_go_first_past_the_bound() -> None:
    recent = RecentEvents(max_events=3, clock=Clock())
    for n in range(5):
        recent.remember((f"evt_{n}", "src"), n, "matched")
    assert len(recent) == 3
    assert [recent.duplicate((f"evt_{n}", "src")) is not None for n in range(5)] == [
        False, False, True, True, True,
    ]  # fmt: skip
