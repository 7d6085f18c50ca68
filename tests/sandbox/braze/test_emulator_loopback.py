"""BrazeClient against the emulator served by uvicorn on loopback: the real network path."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from app.braze.classify import Kind, classify_response
from app.braze.client import BrazeClient
from app.sandbox.braze.emulator import create_emulator, emulator_state
from tests.e2e.servers import serve_app_in_thread

API_KEY = "loopback-key"


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_emulator(api_key=API_KEY)


@pytest.fixture(scope="module")
def base_url(app: FastAPI) -> Iterator[str]:
    with serve_app_in_thread(app) as url:
        yield url


@pytest.fixture(autouse=True)
def clean_emulator(app: FastAPI) -> None:
    emulator_state(app).reset()


@pytest.fixture
async def client(base_url: str) -> AsyncIterator[BrazeClient]:
    async with BrazeClient(base_url=base_url, api_key=SecretStr(API_KEY), timeout=5) as client:
        yield client


@pytest.fixture
async def control(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """Drives the emulator over HTTP, as a test in another process would."""
    async with httpx.AsyncClient(base_url=base_url, trust_env=False) as http:
        yield http


def users(count: int, **attributes: Any) -> list[dict[str, Any]]:
    return [{"external_id": f"u{i}", **attributes} for i in range(count)]


async def test_delivered_attributes_reach_the_profiles(
    client: BrazeClient, control: httpx.AsyncClient
) -> None:
    result = await client.track(users(75, voucher_code="WELCOME-1"))
    assert result.kind is Kind.DELIVERED
    assert result.classification.delivered_indexes == set(range(75))
    assert result.classification.rate_limit is not None
    assert result.classification.rate_limit.remaining == 2999
    profiles = (await control.get("/_emulator/profiles")).json()
    assert len(profiles) == 75
    assert profiles["external_id:u74"] == {"voucher_code": "WELCOME-1"}


async def test_76_objects_are_answered_400_and_classified_split(
    control: httpx.AsyncClient,
) -> None:
    response = await control.post(
        "/users/track",
        json={"attributes": users(76)},
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    assert response.status_code == 400
    classification = classify_response(
        status_code=response.status_code,
        headers=response.headers,
        body=response.text,
        object_count=76,
        now=datetime.now(UTC),
    )
    assert classification.kind is Kind.SPLIT
    assert (await control.get("/_emulator/profiles")).json() == {}


async def test_wrong_key_is_a_configuration_error(base_url: str) -> None:
    async with BrazeClient(base_url=base_url, api_key=SecretStr("not-the-key")) as client:
        result = await client.track(users(1))
    assert (result.status_code, result.kind) == (401, Kind.CONFIG_ERROR)


async def test_injected_429_is_rate_limited_with_brazes_wait(
    client: BrazeClient, control: httpx.AsyncClient
) -> None:
    await control.post("/_emulator/faults", json={"fail_next": [{"status": 429, "retry_after": 2}]})
    limited = await client.track(users(2))
    assert limited.kind is Kind.RATE_LIMITED
    assert limited.classification.retry_after is not None
    assert limited.classification.retry_after.total_seconds() == 2
    assert (await client.track(users(2))).kind is Kind.DELIVERED


async def test_injected_500_is_retried(client: BrazeClient, control: httpx.AsyncClient) -> None:
    await control.post("/_emulator/faults", json={"fail_next": [{"status": 500, "count": 2}]})
    kinds = [(await client.track(users(1))).kind for _ in range(3)]
    assert kinds == [Kind.RETRY, Kind.RETRY, Kind.DELIVERED]


async def test_index_errors_fail_only_those_objects(
    client: BrazeClient, control: httpx.AsyncClient
) -> None:
    faults = {"object_errors": {"external_id:u2": "BLACKLISTED_EXTERNAL_USER_ID"}}
    await control.post("/_emulator/faults", json=faults)
    result = await client.track(users(4, code="A"))
    assert result.kind is Kind.DELIVERED
    assert result.classification.failed == {2: "BLACKLISTED_EXTERNAL_USER_ID"}
    assert result.classification.delivered_indexes == {0, 1, 3}
    assert "external_id:u2" not in (await control.get("/_emulator/profiles")).json()


async def test_latency_is_felt_and_a_shorter_timeout_gives_a_retry_result(
    base_url: str, client: BrazeClient, control: httpx.AsyncClient
) -> None:
    await control.post("/_emulator/faults", json={"latency_ms": 300})
    slow = await client.track(users(1))
    assert slow.kind is Kind.DELIVERED and slow.duration.total_seconds() >= 0.3
    async with BrazeClient(base_url=base_url, api_key=SecretStr(API_KEY), timeout=0.1) as hasty:
        timed_out = await hasty.track(users(1))
    assert (timed_out.kind, timed_out.status_code) == (Kind.RETRY, None)
    assert timed_out.error is not None and "Timeout" in timed_out.error
    # The emulator still answers the abandoned request; let it finish before the next test.
    for _ in range(100):
        if len((await control.get("/_emulator/requests")).json()) == 2:
            break
        await asyncio.sleep(0.02)


async def test_connection_limit_queues_concurrent_calls(
    base_url: str, control: httpx.AsyncClient
) -> None:
    await control.post("/_emulator/faults", json={"latency_ms": 150})
    async with BrazeClient(
        base_url=base_url, api_key=SecretStr(API_KEY), max_connections=1
    ) as client:
        started = time.perf_counter()
        results = await asyncio.gather(*(client.track(users(1)) for _ in range(3)))
        elapsed = time.perf_counter() - started
    assert all(r.kind is Kind.DELIVERED for r in results)
    assert elapsed >= 0.45  # one connection: three answers of 150 ms one after the other


def test_served_app_stops_listening_when_the_block_ends() -> None:
    with serve_app_in_thread(create_emulator(api_key=API_KEY)) as url:
        assert httpx.get(f"{url}/_emulator/requests", trust_env=False).json() == []
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/_emulator/requests", trust_env=False, timeout=1)
