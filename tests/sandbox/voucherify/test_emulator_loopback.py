"""VoucherifyClient against the emulator served by uvicorn on loopback: the real network path.

The emulator and the client share one fake clock, so a wait the client sleeps is time that
passes for the emulator's rate window too, and no test sleeps for real.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from app.sandbox.voucherify.emulator import create_voucherify_emulator, voucherify_emulator_state
from app.sandbox.voucherify.state import EmulatorState
from app.voucherify.client import VoucherifyClient
from app.voucherify.errors import (
    CampaignExhaustedError,
    CampaignNotFoundError,
    CustomerNotFoundError,
    VoucherifyRequestError,
)
from tests.e2e.servers import serve_app_in_thread
from tests.voucherify.fakes import FakeClock

APP_ID, APP_TOKEN = "loopback-app", "loopback-token"
START = 1_800_000_010.0  # ten seconds into a minute
CLOCK = FakeClock(START)


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_voucherify_emulator(app_id=APP_ID, app_token=APP_TOKEN, clock=CLOCK)


@pytest.fixture(scope="module")
def base_url(app: FastAPI) -> Iterator[str]:
    with serve_app_in_thread(app) as url:
        yield url


@pytest.fixture
def state(app: FastAPI) -> EmulatorState:
    state = voucherify_emulator_state(app)
    state.reset()
    state.rate.limit = None
    state.duplicate_source_id = "error"
    state.publication_listing = "voucher"
    CLOCK.now, CLOCK.sleeps = START, []
    return state


def make_client(base_url: str, **options: Any) -> VoucherifyClient:
    settings: dict[str, Any] = {"requests_per_minute": 100_000, "timeout": 5, **options}
    return VoucherifyClient(
        base_url=base_url,
        app_id=APP_ID,
        app_token=SecretStr(APP_TOKEN),
        clock=CLOCK,
        sleep=CLOCK.sleep,
        **settings,
    )


@pytest.fixture
async def client(base_url: str, state: EmulatorState) -> AsyncIterator[VoucherifyClient]:
    async with make_client(base_url) as client:
        yield client


def api_requests(state: EmulatorState, path: str) -> list[dict[str, Any]]:
    return [r for r in state.requests_snapshot() if r["path"] == path]


async def test_250_customer_segment_is_paged_completely_each_customer_once(
    client: VoucherifyClient, state: EmulatorState
) -> None:
    seeded = state.seed_customers(count=250, segment_id="seg_250")
    state.seed_customers(count=10, source_id_pattern="not-in-segment-{n}")
    ids = [c["id"] async for c in client.iter_segment_members("seg_250", page_size=100)]
    assert ids == [c.id for c in seeded]
    assert len(api_requests(state, "/v1/customers")) == 3
    assert await client.count_segment("seg_250") == 250


async def test_segment_of_10050_customers_is_walked_past_the_99_page_limit(
    client: VoucherifyClient, state: EmulatorState, base_url: str
) -> None:
    seeded = state.seed_customers(count=10_050, segment_id="seg_big")
    ids = [c["id"] async for c in client.iter_segment_members("seg_big")]
    assert len(ids) == len(set(ids)) == 10_050
    assert set(ids) == {c.id for c in seeded}
    walk = api_requests(state, "/v1/customers")
    assert len(walk) > 99 and all(r["status"] == 200 for r in walk)
    assert not any("page=" in r["query"] for r in walk)
    # What a walk by page numbers would have run into:
    async with httpx.AsyncClient(base_url=base_url, trust_env=False) as raw:
        page_100 = await raw.get(
            "/v1/customers",
            params={"segment_id": "seg_big", "limit": 100, "page": 100},
            headers={"X-App-Id": APP_ID, "X-App-Token": APP_TOKEN},
        )
    assert page_100.status_code == 400


async def test_finite_code_pool_runs_out_with_campaign_exhausted(
    client: VoucherifyClient, state: EmulatorState, base_url: str
) -> None:
    state.add_campaign(name="spring", count=3, pattern="SPR-##")
    codes = [
        (
            await client.publish(
                campaign="spring", customer={"source_id": f"u{n}"}, source_id=f"s{n}"
            )
        ).code
        for n in range(3)
    ]
    with pytest.raises(CampaignExhaustedError):
        await client.publish(campaign="spring", customer={"source_id": "u4"}, source_id="s4")
    assert codes == ["SPR-01", "SPR-02", "SPR-03"]
    async with httpx.AsyncClient(base_url=base_url, trust_env=False) as raw:
        shown = (await raw.get("/_emulator/publications")).json()
    assert [(p["code"], p["customer_source_id"]) for p in shown] == [
        ("SPR-01", "u0"),
        ("SPR-02", "u1"),
        ("SPR-03", "u2"),
    ]


@pytest.mark.parametrize(
    ("duplicates", "listing"),
    [("error", "voucher"), ("error", "vouchers_id"), ("return_original", "voucher")],
)
async def test_repeating_a_source_id_returns_the_same_code_and_spends_no_other(
    client: VoucherifyClient, state: EmulatorState, duplicates: Any, listing: Any
) -> None:
    state.duplicate_source_id, state.publication_listing = duplicates, listing
    campaign = state.add_campaign(name="welcome", count=5)
    customer = {"source_id": "braze-usr-1", "email": "ana@example.com"}
    first = await client.publish(campaign="welcome", customer=customer, source_id="dist1:u1")
    again = await client.publish(campaign="welcome", customer=customer, source_id="dist1:u1")
    assert again.code == first.code and again.voucher == first.voucher and again.id == first.id
    assert again.reused is (duplicates == "error")
    assert campaign.remaining == 4
    assert len(state.publications_snapshot()) == 1


async def test_concurrent_publications_each_get_a_distinct_code(
    client: VoucherifyClient, state: EmulatorState
) -> None:
    state.add_campaign(name="welcome", count=20)
    results = await asyncio.gather(
        *(
            client.publish(campaign="welcome", customer={"source_id": f"u{n}"}, source_id=f"s{n}")
            for n in range(20)
        )
    )
    assert len({r.code for r in results}) == 20


async def test_emulators_429_is_waited_out_by_the_client(
    client: VoucherifyClient, state: EmulatorState
) -> None:
    state.rate.limit = 3
    state.add_customer(source_id="u1")
    found = [await client.get_customer("u1") for _ in range(5)]
    assert all(c["source_id"] == "u1" for c in found)
    statuses = [r["status"] for r in api_requests(state, "/v1/customers/u1")]
    assert statuses == [200, 200, 200, 429, 200, 200]
    assert CLOCK.sleeps == [50.0]  # the rest of the emulator's minute, from Retry-After


async def test_client_within_the_emulators_budget_never_gets_a_429(
    base_url: str, state: EmulatorState
) -> None:
    state.rate.limit = 3
    state.add_customer(source_id="u1")
    async with make_client(base_url, requests_per_minute=3) as client:
        for _ in range(7):
            await client.get_customer("u1")
    statuses = {r["status"] for r in api_requests(state, "/v1/customers/u1")}
    assert statuses == {200}
    assert CLOCK.sleeps == [60.0, 60.0]


async def test_injected_503s_are_retried_until_the_emulator_answers(
    client: VoucherifyClient, state: EmulatorState
) -> None:
    state.add_campaign(name="welcome", count=1)
    state.faults.fail_next(2, status=503)
    result = await client.publish(campaign="welcome", customer={"source_id": "u1"}, source_id="s1")
    assert result.code == "CODE-000001" and not result.reused
    assert [r["status"] for r in state.requests_snapshot()] == [503, 503, 200]
    assert CLOCK.sleeps == [0.5, 1.0]


async def test_unknown_campaign_customer_and_bad_token_are_told_apart(
    base_url: str, client: VoucherifyClient, state: EmulatorState
) -> None:
    with pytest.raises(CampaignNotFoundError):
        await client.publish(campaign="nope", customer={"source_id": "u1"}, source_id="s1")
    with pytest.raises(CustomerNotFoundError):
        await client.get_customer("ghost")
    async with VoucherifyClient(
        base_url=base_url, app_id=APP_ID, app_token=SecretStr("wrong")
    ) as intruder:
        with pytest.raises(VoucherifyRequestError) as caught:
            await intruder.get_customer("ghost")
    assert (caught.value.http_status, caught.value.key) == (401, "unauthorized")
