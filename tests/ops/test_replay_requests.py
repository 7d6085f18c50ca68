"""Replaying an event and a distribution; asking for, planning, listing and canceling bulk
replays; who may; and the bounds."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.delivery.models import Delivery, DeliveryAttempt
from app.delivery.store import withdrawal
from app.distributions.models import Distribution
from app.ops.models import Replay
from tests.conftest import READER, WRITER
from tests.ops.replay_data import T0, create_distribution, settled_delivery, stored_event


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Small bounds, to reach them with a few rows."""
    bounds = {"replay_max_rows": 5, "replay_max_window_days": 7, "replay_inline_rows": 3}
    return settings.model_copy(update=bounds)


async def post(client: httpx.AsyncClient, url: str, body: Any = None, status: int = 202) -> Any:
    response = await client.post(url, json=body, headers=WRITER)
    assert response.status_code == status, response.text
    return response.json()


async def test_an_event_replay_requeues_with_the_fixed_mapping_and_adds_new_distributions(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    fixed = await create_distribution(client)
    event = await stored_event(session, 1)
    old = await settled_delivery(session, event, fixed)
    patched = await client.patch(
        f"/api/v1/distributions/{fixed}",
        json={"mapping": [{"source": "voucher.code", "attribute": "welcome_code_v2"}]},
        headers=WRITER,
    )
    assert patched.status_code == 200 and patched.json()["version"] == 2
    added = await create_distribution(client)

    replay = await post(client, f"/api/v1/events/{event.id}/replay", {"force": True})
    assert (replay["kind"], replay["trigger"], replay["status"]) == ("event", "manual", "done")
    assert (replay["requested_by"], replay["filter"], replay["force"]) == (
        "ops-team", {"event_id": event.id}, True,
    )  # fmt: skip
    assert (replay["matched"], replay["queued"], replay["skipped"]) == (2, 2, {})

    await session.refresh(old)
    assert (old.status, old.distribution_version, old.attempts, old.force) == (
        "pending",
        2,
        0,
        True,
    )
    assert old.attributes is not None and "welcome_code_v2" in old.attributes
    assert "old" not in old.attributes
    new = (
        await session.execute(select(Delivery).where(Delivery.distribution_id == added))
    ).scalar_one()
    assert (new.event_id, new.trigger, new.status, str(new.replay_id)) == (
        event.id, "manual", "pending", replay["id"],
    )  # fmt: skip
    detail = (await client.get(f"/api/v1/deliveries/{old.id}", headers=READER)).json()
    assert [(a["outcome"], a["replay_id"], a["trigger"]) for a in detail["attempts_log"]] == [
        ("replay_queued", replay["id"], "manual")
    ]

    assert replay["started_at"] is not None and replay["finished_at"] is not None
    again = await post(client, f"/api/v1/events/{event.id}/replay")
    assert (again["matched"], again["queued"], again["skipped"]) == (2, 0, {"already_queued": 2})


async def test_an_event_replay_of_an_identifier_with_a_nul_character_skips_it(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    """Postgres cannot store the NUL, and dropping it would address another Braze user: the
    replay says why it queued nothing instead of failing with a 500."""
    await create_distribution(client)
    event = await stored_event(session, 3)
    assert event.raw_body is not None
    event.raw_body = event.raw_body.replace(b'"user-3"', b'"usr\\u0000x"')
    await session.flush()

    replay = await post(client, f"/api/v1/events/{event.id}/replay")
    assert (replay["matched"], replay["queued"], replay["skipped"]) == (
        1, 0, {"no_identifier": 1},
    )  # fmt: skip
    delivery = (await session.execute(select(Delivery))).scalar_one()
    assert (delivery.status, delivery.braze_user_key) == ("skipped", None)


async def test_an_event_replay_says_why_a_distribution_queued_nothing(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    consent = await create_distribution(client)
    other_segment = await create_distribution(client, filters={"segment_id": "seg_other"})
    event = await stored_event(session, 2)
    delivered = await settled_delivery(session, event, consent, status="delivered")
    filtered = await settled_delivery(session, event, other_segment, status="delivered")
    # The customer withdrew consent since: the stored event is what is mapped again.
    event.raw_body = event.raw_body.replace(b'"braze_opt_in": true', b'"braze_opt_in": false')  # type: ignore[union-attr]
    await session.flush()

    replay = await post(client, f"/api/v1/events/{event.id}/replay")
    assert (replay["matched"], replay["queued"]) == (2, 0)
    assert replay["skipped"] == {"no_consent": 1, "filtered_out": 1}
    for row in (delivered, filtered):
        await session.refresh(row)
        assert row.status == "delivered"  # left as it was, with a note in its log
    notes = (await session.execute(select(DeliveryAttempt.outcome))).scalars().all()
    assert notes == ["replay_skipped", "replay_skipped"]


async def test_a_small_distribution_window_runs_inline_over_the_events_of_its_triggers(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    distribution = await create_distribution(client)
    before = await stored_event(session, 3, received_at=T0 - timedelta(hours=1))
    inside = [await stored_event(session, n) for n in (4, 5)]
    await settled_delivery(session, inside[0], distribution, status="failed")

    replay = await post(
        client, f"/api/v1/distributions/{distribution}/replay",
        {"since": T0.isoformat(), "until": (T0 + timedelta(days=1)).isoformat()},
    )  # fmt: skip
    assert (replay["kind"], replay["status"], replay["total"]) == ("distribution", "done", 2)
    assert (replay["matched"], replay["queued"]) == (2, 2)
    rows = (await session.execute(select(Delivery.event_id, Delivery.status))).all()
    assert sorted(rows) == [(inside[0].id, "pending"), (inside[1].id, "pending")]
    assert before.id not in [r[0] for r in rows]


async def test_a_large_distribution_window_goes_to_the_background(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    distribution = await create_distribution(client)
    for n in range(4):  # REPLAY_INLINE_ROWS is 3 here
        await stored_event(session, 10 + n)
    replay = await post(
        client, f"/api/v1/distributions/{distribution}/replay", {"since": T0.isoformat(),
        "until": (T0 + timedelta(days=1)).isoformat()},
    )  # fmt: skip
    assert (replay["status"], replay["total"], replay["matched"]) == ("queued", 4, 0)


async def test_paused_distributions_do_not_replay(client: httpx.AsyncClient) -> None:
    distribution = await create_distribution(client, status="paused")
    answer = await post(
        client, f"/api/v1/distributions/{distribution}/replay", {"since": T0.isoformat()}, 409
    )
    assert "paused" in answer["error"]["message"]


async def test_a_bulk_replay_is_queued_with_its_filter_and_the_plan_counts_the_same_rows(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    distribution = await create_distribution(client)
    rows = [await settled_delivery(session, await stored_event(session, n), distribution)
            for n in (20, 21)]  # fmt: skip
    rows.append(await settled_delivery(session, await stored_event(session, 22), distribution,
                                       status="delivered"))  # fmt: skip
    await settled_delivery(session, await stored_event(session, 23), distribution, status="pending")
    body = {"filter": {"distribution_id": str(distribution), "status": "dead"}}

    plan = await post(client, "/api/v1/replays/plan", body, 200)
    assert plan == {
        "count": 2, "by_distribution": {str(distribution): 2}, "by_status": {"dead": 2},
        "sample_ids": [rows[0].id, rows[1].id],
    }  # fmt: skip
    every_settled = await post(
        client, "/api/v1/replays/plan", {"filter": {"event_type": "customer.segment.entered"}},
        200,
    )  # fmt: skip
    assert every_settled["by_status"] == {"dead": 2, "delivered": 1}
    by_user = await post(
        client, "/api/v1/replays/plan", {"filter": {"braze_user_key": "external_id:user-21"}}, 200
    )
    assert by_user["sample_ids"] == [rows[1].id]
    window = {"since": (T0 + timedelta(days=1)).isoformat(),
              "until": (T0 + timedelta(days=2)).isoformat()}  # fmt: skip
    assert (await post(client, "/api/v1/replays/plan", {"filter": window}, 200))["count"] == 0

    replay = await post(client, "/api/v1/replays", {**body, "force": True})
    assert (replay["kind"], replay["trigger"], replay["status"]) == ("bulk", "bulk", "queued")
    assert (replay["total"], replay["force"], replay["requested_by"]) == (2, True, "ops-team")
    assert replay["filter"] == body["filter"]
    shown = (await client.get(f"/api/v1/replays/{replay['id']}", headers=READER)).json()
    assert shown == replay


async def test_canceling_a_queued_replay_stops_it_and_a_canceled_one_cannot_be_again(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    replay = await post(client, "/api/v1/replays", {"filter": {"status": "failed"}})
    canceled = await post(client, f"/api/v1/replays/{replay['id']}/cancel", status=200)
    assert canceled["status"] == "canceled" and canceled["finished_at"] is not None
    assert canceled["withdrawn"] == 0
    again = await post(client, f"/api/v1/replays/{replay['id']}/cancel", status=409)
    assert "canceled" in again["error"]["message"]


async def test_canceling_a_done_replay_withdraws_what_it_queued_and_was_not_sent(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    distribution = await create_distribution(client)
    event = await stored_event(session, 1)
    old = await settled_delivery(session, event, distribution)
    replay = await post(client, f"/api/v1/events/{event.id}/replay", {"force": True})
    assert (replay["status"], replay["queued"]) == ("done", 1)

    canceled = await post(client, f"/api/v1/replays/{replay['id']}/cancel", status=200)
    # Answered at once: what it queued is withdrawn in batches after the answer.
    assert (canceled["status"], canceled["withdrawing"], canceled["withdrawn"]) == (
        "canceled", True, 0,
    )  # fmt: skip
    assert canceled["finished_at"] == replay["finished_at"]  # when it finished queueing
    # The batches, here in the test's transaction (the API's run where the cancel committed).
    raw = await (await session.connection()).get_raw_connection()
    assert await withdrawal.carry_out(raw.driver_connection, withdrawal.REPLAY, old.replay_id) == 1
    shown = (await client.get(f"/api/v1/replays/{replay['id']}", headers=READER)).json()
    assert (shown["withdrawing"], shown["withdrawn"]) == (False, 1)
    await session.refresh(old)
    assert (old.status, old.skip_reason) == ("skipped", "replay_canceled")
    detail = (await client.get(f"/api/v1/deliveries/{old.id}", headers=READER)).json()
    assert [(a["outcome"], a["replay_id"]) for a in detail["attempts_log"]] == [
        ("replay_queued", replay["id"]), ("skipped", replay["id"]),
    ]  # fmt: skip


async def test_the_replay_list_pages_newest_first_and_stays_stable_while_replays_arrive(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    ids = []
    for _ in range(5):
        ids.append((await post(client, "/api/v1/replays", {"filter": {"status": "dead"}}))["id"])
        # One transaction in this test: make the request times distinct, as they are in life.
        await session.execute(
            update(Replay)
            .where(Replay.id == uuid.UUID(ids[-1]))
            .values(requested_at=T0 + timedelta(seconds=len(ids)))
        )

    async def page(**params: Any) -> Any:
        response = await client.get("/api/v1/replays", params=params, headers=READER)
        assert response.status_code == 200, response.text
        return response.json()

    first = await page(limit=2)
    assert [r["id"] for r in first["items"]] == [ids[4], ids[3]]
    await post(client, "/api/v1/replays", {"filter": {"status": "dead"}})  # a new one arrives
    second = await page(limit=2, cursor=first["next_cursor"])
    assert [r["id"] for r in second["items"]] == [ids[2], ids[1]]
    third = await page(limit=2, cursor=second["next_cursor"])
    assert [r["id"] for r in third["items"]] == [ids[0]] and third["next_cursor"] is None
    assert len((await page(kind="bulk", status="queued"))["items"]) == 6
    assert (await page(kind="event"))["items"] == []
    bad = await client.get("/api/v1/replays", params={"cursor": "nonsense"}, headers=READER)
    assert bad.status_code == 422


async def test_bounds_refuse_with_a_422_that_names_the_bound(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    distribution = await create_distribution(client)
    for n in range(6):  # REPLAY_MAX_ROWS is 5 here
        await settled_delivery(session, await stored_event(session, 30 + n), distribution)
    too_long = {"since": T0.isoformat(), "until": (T0 + timedelta(days=8)).isoformat()}
    for url, body in (
        ("/api/v1/replays", {"filter": too_long}),
        ("/api/v1/replays/plan", {"filter": too_long}),
        (f"/api/v1/distributions/{distribution}/replay", too_long),
    ):
        answer = await post(client, url, body, 422)
        assert answer["error"]["details"] == {"bound": "REPLAY_MAX_WINDOW_DAYS", "limit": 7}
        assert "REPLAY_MAX_WINDOW_DAYS is 7" in answer["error"]["message"]
    for url, body in (
        ("/api/v1/replays", {"filter": {"status": "dead"}}),
        ("/api/v1/replays/plan", {"filter": {"status": "dead"}}),
        (f"/api/v1/distributions/{distribution}/replay", {"since": T0.isoformat(),
         "until": (T0 + timedelta(days=1)).isoformat()}),
    ):  # fmt: skip
        answer = await post(client, url, body, 422)
        assert answer["error"]["details"] == {"bound": "REPLAY_MAX_ROWS", "limit": 5}
    empty: dict[str, Any]
    for empty in ({}, {"filter": {}}, {"filter": {"status": "pending"}}, {"filter": {"x": 1}}):
        await post(client, "/api/v1/replays", empty, 422)


async def test_read_only_tokens_get_403_on_every_replay_request(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    event = await stored_event(session, 40)
    some = uuid.uuid4()
    for url, body in (
        (f"/api/v1/events/{event.id}/replay", None),
        (f"/api/v1/distributions/{some}/replay", {"since": T0.isoformat()}),
        ("/api/v1/replays", {"filter": {"status": "dead"}}),
        ("/api/v1/replays/plan", {"filter": {"status": "dead"}}),
        (f"/api/v1/replays/{some}/cancel", None),
        ("/api/v1/deliveries/1/replay", None),
    ):
        response = await client.post(url, json=body, headers=READER)
        assert response.status_code == 403, url
        assert "read-only" in response.json()["error"]["message"]
    assert (
        await client.post("/api/v1/replays", json={"filter": {"status": "dead"}})
    ).status_code == 401


async def test_unknown_ids_get_404(client: httpx.AsyncClient) -> None:
    some = uuid.uuid4()
    await post(client, "/api/v1/events/999999/replay", None, 404)
    await post(client, f"/api/v1/distributions/{some}/replay", {"since": T0.isoformat()}, 404)
    await post(client, f"/api/v1/replays/{some}/cancel", None, 404)
    assert (await client.get(f"/api/v1/replays/{some}", headers=READER)).status_code == 404


async def test_a_distribution_that_no_longer_validates_is_skipped_by_a_replay_not_a_500(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    """Intake leaves such a distribution out of matching; a replay reading it must too, with a
    reason, and still queue the event's other deliveries (issue 15: a stored row that cannot be
    read is contained)."""
    broken, fine = await create_distribution(client), await create_distribution(client)
    event = await stored_event(session, 1)
    old = await settled_delivery(session, event, broken)
    # As a hand edit, or a rule tightened by an upgrade, could leave it: no code mapped.
    await session.execute(update(Distribution).where(Distribution.id == broken).values(mapping=[]))

    replay = await post(client, f"/api/v1/events/{event.id}/replay")
    assert (replay["matched"], replay["queued"]) == (2, 1)
    assert replay["skipped"] == {"distribution_invalid": 1}
    await session.refresh(old)
    assert old.status == "dead"
    queued = await session.execute(select(Delivery).where(Delivery.distribution_id == fine))
    assert queued.scalar_one().status == "pending"
