"""Every id and every time a client sends to the ops API is bounded the same way: past the
bound it gets 422 naming the bound, never a 500 from Postgres or from Python's datetime."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.params import BIGINT_MAX, EARLIEST, LATEST
from tests.conftest import WRITER
from tests.ops.replay_data import T0, create_distribution, settled_delivery, stored_event

HUGE = 2**63
# Valid ISO-8601 times that Python parses but cannot convert to UTC (year 0 and year 10000).
EDGES = ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00")
TIME_BOUND = f"between {EARLIEST.isoformat()} and {LATEST.isoformat()}"


def _messages(response: httpx.Response) -> str:
    assert response.status_code == 422, (response.request.url, response.text)
    error = response.json()["error"]
    assert error["code"] == "validation_error", error
    return " ".join(str(detail["message"]) for detail in error.get("details") or [error])


async def test_an_id_past_postgres_bigint_gets_422_naming_the_bound_on_every_route(
    client: httpx.AsyncClient,
) -> None:
    for method, url, params in (
        ("POST", f"/api/v1/events/{HUGE}/replay", {}),
        ("GET", f"/api/v1/events/{HUGE}", {}),
        ("POST", f"/api/v1/deliveries/{HUGE}/replay", {}),
        ("GET", f"/api/v1/braze-requests/{HUGE}", {}),
        ("GET", f"/api/v1/runs/{HUGE}", {}),
        ("POST", f"/api/v1/runs/{HUGE}/cancel", {}),
        ("POST", f"/api/v1/runs/{HUGE}/resume", {}),
        ("GET", "/api/v1/deliveries", {"event_id": HUGE}),
        ("GET", "/api/v1/deliveries", {"run_id": HUGE}),
    ):
        response = await client.request(method, url, params=params, headers=WRITER)
        assert str(BIGINT_MAX) in _messages(response), (url, params)


async def test_times_python_cannot_hold_in_utc_get_422_naming_the_bound(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    distribution = await create_distribution(client)
    replay = f"/api/v1/distributions/{distribution}/replay"
    for edge in EDGES:
        for method, url, kwargs in (
            ("GET", "/api/v1/events", {"params": {"since": edge}}),
            ("GET", "/api/v1/events", {"params": {"until": edge}}),
            ("GET", "/api/v1/deliveries", {"params": {"since": edge}}),
            ("GET", "/api/v1/deliveries", {"params": {"until": edge}}),
            ("POST", "/api/v1/replays", {"json": {"filter": {"since": edge}}}),
            ("POST", "/api/v1/replays", {"json": {"filter": {"until": edge}}}),
            ("POST", "/api/v1/replays/plan", {"json": {"filter": {"since": edge}}}),
            ("POST", "/api/v1/replays/plan", {"json": {"filter": {"until": edge}}}),
            ("POST", replay, {"json": {"since": edge}}),
            ("POST", replay, {"json": {"since": T0.isoformat(), "until": edge}}),
        ):
            response = await client.request(method, url, headers=WRITER, **kwargs)
            assert TIME_BOUND in _messages(response), (url, kwargs)


@pytest.mark.parametrize("edge", EDGES)
async def test_a_replays_cursor_holding_a_time_out_of_bounds_gets_422(
    client: httpx.AsyncClient, edge: str
) -> None:
    raw = f"{edge}|{uuid.uuid4()}".encode()
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    response = await client.get("/api/v1/replays", params={"cursor": cursor}, headers=WRITER)
    assert response.status_code == 422, response.text


async def test_times_at_the_bounds_are_accepted(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    distribution = await create_distribution(client)
    event = await stored_event(session, 1)
    await settled_delivery(session, event, distribution)
    window = {"since": EARLIEST.isoformat(), "until": LATEST.isoformat()}
    for url in ("/api/v1/events", "/api/v1/deliveries"):
        response = await client.get(url, params=window, headers=WRITER)
        assert response.status_code == 200, response.text
        assert len(response.json()["items"]) == 1


def _documented_params(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    """Every (operation, parameter name, schema) of /api/v1 in the OpenAPI document."""
    found = []
    for path, operations in app.openapi()["paths"].items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                schema = parameter["schema"]
                for option in schema.get("anyOf", [schema]):
                    found.append((f"{method.upper()} {path}", parameter["name"], option))
    return found


async def test_every_documented_integer_id_is_bounded_by_bigint(app: FastAPI) -> None:
    ids = [
        (where, name, schema)
        for where, name, schema in _documented_params(app)
        if schema.get("type") == "integer" and name.endswith("id")
    ]
    assert ids, "the ops API has integer ids"
    for where, name, schema in ids:
        assert (schema.get("minimum"), schema.get("maximum")) == (1, BIGINT_MAX), (where, name)


@pytest.mark.parametrize("number", ["2026", "0.5", "-1", "1741597200"])
async def test_a_number_for_a_time_gets_422_instead_of_a_time_in_1970(
    client: httpx.AsyncClient, number: str
) -> None:
    distribution = await create_distribution(client)
    replay = f"/api/v1/distributions/{distribution}/replay"
    for method, url, kwargs in (
        ("GET", "/api/v1/events", {"params": {"since": number}}),
        ("GET", "/api/v1/deliveries", {"params": {"until": number}}),
        ("POST", "/api/v1/replays/plan", {"json": {"filter": {"since": float(number)}}}),
        ("POST", replay, {"json": {"since": number}}),
    ):
        response = await client.request(method, url, headers=WRITER, **kwargs)
        assert "ISO-8601" in _messages(response), (url, kwargs)
