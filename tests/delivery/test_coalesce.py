from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.delivery.coalesce import DueDelivery, KnownValue, Trust, plan, separate

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def due(
    id_: int, user: str, minutes: int, force: bool = False, **attributes: object
) -> DueDelivery:
    return DueDelivery(
        id_, f"external_id:{user}", {"external_id": user, **attributes},
        NOW + timedelta(minutes=minutes), force,
    )  # fmt: skip


def test_one_object_per_user_with_the_newest_value_of_each_attribute() -> None:
    result = plan([due(1, "mia", 5, code="NEW"), due(2, "mia", 0, code="OLD", tier="gold")], {})
    assert len(result.updates) == 1
    update = result.updates[0]
    assert update.object == {"external_id": "mia", "code": "NEW", "tier": "gold"}
    assert sorted(update.delivery_ids) == [1, 2]
    assert update.sources["code"] == (NOW + timedelta(minutes=5), 1)


def test_unchanged_values_are_left_out_and_counted() -> None:
    known = {("external_id:mia", "code"): KnownValue("A", NOW)}
    result = plan([due(1, "mia", 1, code="A", tier="gold")], known)
    assert result.updates[0].object == {"external_id": "mia", "tier": "gold"}
    assert result.omitted == {1: {"unchanged": ["code"]}}
    assert result.data_points_saved == 1


def test_a_user_with_nothing_new_is_skipped_as_unchanged() -> None:
    known = {("external_id:mia", "code"): KnownValue("A", NOW)}
    result = plan([due(1, "mia", 1, code="A")], known)
    assert result.updates == []
    assert result.skipped == {1: "unchanged"}


def test_force_sends_unchanged_values() -> None:
    known = {("external_id:mia", "code"): KnownValue("A", NOW)}
    result = plan([due(1, "mia", 1, force=True, code="A")], known)
    assert result.updates[0].object["code"] == "A"
    assert result.data_points_saved == 0


def test_older_events_are_stale() -> None:
    known = {("external_id:mia", "code"): KnownValue("NEW", NOW + timedelta(hours=1))}
    result = plan([due(1, "mia", 0, code="OLD")], known)
    assert result.skipped == {1: "stale"}
    assert result.omitted == {1: {"stale": ["code"]}}


def test_a_forced_older_value_is_sent_and_recorded_at_the_newer_time_known() -> None:
    """An operator's forced replay wins over stale (issue 15). Recorded at the newer time, the
    state says what Braze now holds and never goes back in time."""
    later = NOW + timedelta(hours=1)
    known = {("external_id:mia", "code"): KnownValue("NEW", later)}
    result = plan([due(1, "mia", 0, force=True, code="OLD")], known)
    assert result.skipped == {} and result.omitted == {}
    assert result.updates[0].object == {"external_id": "mia", "code": "OLD"}
    assert result.updates[0].sources["code"] == (later, 1)


def test_a_value_without_an_event_time_keeps_the_time_known() -> None:
    """Recorded without one, the state would forget the newer time, and an older event that
    comes next would then overwrite the value (issue 15: a NULL time never overwrites one)."""
    known = {("external_id:mia", "code"): KnownValue("A", NOW)}
    untimed = DueDelivery(1, "external_id:mia", {"external_id": "mia", "code": "B"}, None)
    result = plan([untimed], known)
    assert result.updates[0].object["code"] == "B"
    assert result.updates[0].sources["code"] == (NOW, 1)
    assert plan([untimed], {}).updates[0].sources["code"] == (None, 1)


def test_null_unsets_and_is_compared_like_any_value() -> None:
    known = {("external_id:mia", "code"): KnownValue(None, NOW)}
    assert plan([due(1, "mia", 1, code=None)], known).skipped == {1: "unchanged"}
    assert plan([due(1, "mia", 1, code=None)], {}).updates[0].object == {
        "external_id": "mia",
        "code": None,
    }


def test_update_existing_only_holds_when_every_delivery_asks_for_it() -> None:
    both = plan(
        [
            due(1, "mia", 0, _update_existing_only=True, a=1),
            due(2, "mia", 1, _update_existing_only=True, b=2),
        ],
        {},
    )
    assert both.updates[0].object["_update_existing_only"] is True
    one = plan(
        [
            due(1, "mia", 0, _update_existing_only=True, a=1),
            due(2, "mia", 1, _update_existing_only=False, b=2),
        ],
        {},
    )
    assert one.updates[0].object["_update_existing_only"] is False


def test_an_unchanged_value_from_a_newer_event_is_confirmed_with_its_time() -> None:
    # Found by `make soak`: left out without a trace, the newer event's time was lost, and a
    # retry of an event in between later overwrote the value at Braze.
    known = {("external_id:mia", "amount"): KnownValue(4497, NOW)}
    result = plan([due(7, "mia", 2, amount=4497)], known)
    assert result.skipped == {7: "unchanged"}
    assert result.confirmed == [("external_id:mia", "amount", 4497, NOW + timedelta(minutes=2), 7)]


def test_a_value_braze_may_have_replaced_is_sent_even_when_it_looks_unchanged() -> None:
    # A send of another value after "A" timed out: Braze may hold that one now.
    known = {("external_id:mia", "code"): KnownValue("A", NOW, uncertain=True)}
    result = plan([due(1, "mia", 60, code="A")], known)
    assert [u.object.get("code") for u in result.updates] == ["A"]
    assert result.data_points_saved == 0


def test_an_event_older_than_a_send_with_an_unknown_outcome_is_stale() -> None:
    # "B" (minute 10) timed out: Braze may hold it. An older event must not go over it.
    known = {
        ("external_id:mia", "code"): KnownValue(
            "A", NOW, uncertain=True, doubt_event_time=NOW + timedelta(minutes=10)
        )
    }
    result = plan([due(1, "mia", 5, code="C")], known)
    assert result.skipped == {1: "stale"}
    assert result.updates == []


def test_a_value_is_trusted_for_its_period_then_sent_again() -> None:
    accepted = NOW - timedelta(days=8)
    known = {("external_id:mia", "code"): KnownValue("A", NOW, sent_at=accepted)}
    fresh = Trust(now=accepted + timedelta(days=6), period=timedelta(days=7))
    stale_trust = Trust(now=NOW, period=timedelta(days=7))
    assert plan([due(1, "mia", 1, code="A")], known, fresh).skipped == {1: "unchanged"}
    resent = plan([due(1, "mia", 1, code="A")], known, stale_trust)
    assert [u.object for u in resent.updates] == [{"external_id": "mia", "code": "A"}]
    assert resent.data_points_saved == 0


def test_a_refused_object_comes_apart_by_the_delivery_each_value_came_from() -> None:
    older = due(1, "mia", 1, code="OLD", tier="gold")
    newer = due(2, "mia", 2, code="NEW")
    other = due(3, "mia", 3, bad="X")
    result = plan([older, newer, other], {})
    (update,) = result.updates
    parts = separate(update, {d.id: d for d in (older, newer, other)})
    assert [(p.delivery_ids, p.object) for p in parts] == [
        ([1], {"external_id": "mia", "tier": "gold"}),
        ([2], {"external_id": "mia", "code": "NEW"}),
        ([3], {"external_id": "mia", "bad": "X"}),
    ]
    assert parts[1].sources == {"code": (NOW + timedelta(minutes=2), 2)}


def test_a_delivery_whose_values_were_all_replaced_goes_with_the_newer_one() -> None:
    older = due(1, "mia", 1, code="OLD")
    newer = due(2, "mia", 2, code="NEW")
    other = due(3, "mia", 3, bad="X")
    (update,) = plan([older, newer, other], {}).updates
    parts = separate(update, {d.id: d for d in (older, newer, other)})
    assert [p.delivery_ids for p in parts] == [[2, 1], [3]]
