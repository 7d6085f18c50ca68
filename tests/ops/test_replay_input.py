"""Replay bodies refuse what they do not understand: unknown fields, loose booleans, a window
that starts in the future. Nothing is replayed when a body is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.ops.models import Replay
from tests.conftest import WRITER
from tests.ops.replay_data import T0, create_distribution, settled_delivery, stored_event


async def _refused(client: httpx.AsyncClient, url: str, body: Any) -> dict[str, Any]:
    response = await client.post(url, json=body, headers=WRITER)
    assert response.status_code == 422, (url, body, response.text)
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == "validation_error"
    return error


def _locs(error: dict[str, Any]) -> list[list[Any]]:
    return [detail["loc"] for detail in error["details"]]


async def _replays(session: AsyncSession) -> int:
    return (await session.execute(select(func.count()).select_from(Replay))).scalar_one()


async def test_unknown_fields_in_replay_bodies_get_422_naming_the_field(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    distribution = await create_distribution(client)
    event = await stored_event(session, 1)
    delivery = await settled_delivery(session, event, distribution)
    since, until = T0.isoformat(), (T0 + timedelta(days=1)).isoformat()
    for url, body, field in (
        ("/api/v1/replays", {"filter": {"status": "dead"}, "dry_run": True}, "dry_run"),
        ("/api/v1/replays/plan", {"filter": {"status": "dead"}, "force": True}, "force"),
        (f"/api/v1/distributions/{distribution}/replay",
         {"since": since, "untill": until, "forse": True}, "untill"),
        (f"/api/v1/events/{event.id}/replay", {"forse": True}, "forse"),
        (f"/api/v1/deliveries/{delivery.id}/replay", {"forse": True}, "forse"),
    ):  # fmt: skip
        error = await _refused(client, url, body)
        assert ["body", field] in _locs(error), (url, error)
    error = await _refused(
        client, f"/api/v1/distributions/{distribution}/replay",
        {"since": since, "untill": until, "forse": True},
    )  # fmt: skip
    assert sorted(_locs(error)) == [["body", "forse"], ["body", "untill"]]
    assert await _replays(session) == 0


async def test_force_must_be_a_real_boolean(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    distribution = await create_distribution(client)
    event = await stored_event(session, 2)
    delivery = await settled_delivery(session, event, distribution)
    for loose in ("yes", 1, "true"):
        for url, body in (
            ("/api/v1/replays", {"filter": {"status": "dead"}, "force": loose}),
            (f"/api/v1/distributions/{distribution}/replay",
             {"since": T0.isoformat(), "force": loose}),
            (f"/api/v1/events/{event.id}/replay", {"force": loose}),
            (f"/api/v1/deliveries/{delivery.id}/replay", {"force": loose}),
        ):  # fmt: skip
            error = await _refused(client, url, body)
            assert ["body", "force"] in _locs(error)
    assert await _replays(session) == 0


async def test_a_window_starting_in_the_future_is_refused(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    distribution = await create_distribution(client)
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    for url, body in (
        (f"/api/v1/distributions/{distribution}/replay", {"since": tomorrow}),
        ("/api/v1/replays", {"filter": {"since": tomorrow}}),
        ("/api/v1/replays/plan", {"filter": {"status": "dead", "since": tomorrow}}),
    ):
        error = await _refused(client, url, body)
        assert "is in the future" in error["details"][0]["message"], error
    assert await _replays(session) == 0


async def test_a_window_without_a_zone_is_utc(client: httpx.AsyncClient) -> None:
    distribution = await create_distribution(client)
    naive = (datetime.now(UTC) - timedelta(hours=1)).replace(tzinfo=None).isoformat()
    for url, body, status in (
        (f"/api/v1/distributions/{distribution}/replay", {"since": naive}, 202),
        ("/api/v1/replays/plan", {"filter": {"since": naive}}, 200),
    ):
        response = await client.post(url, json=body, headers=WRITER)
        assert response.status_code == status, response.text
