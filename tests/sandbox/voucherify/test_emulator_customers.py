"""The Voucherify emulator's `GET /v1/customers` in process: Voucherify's paging limits, the
order values and the `starting_after` cursor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from app.sandbox.voucherify.emulator import create_voucherify_emulator, voucherify_emulator_state
from app.sandbox.voucherify.state import EmulatorState
from tests.voucherify.fakes import APP_ID, APP_TOKEN, FakeClock


@pytest.fixture
def app() -> FastAPI:
    return create_voucherify_emulator(app_id=APP_ID, app_token=APP_TOKEN, clock=FakeClock())


@pytest.fixture
def state(app: FastAPI) -> EmulatorState:
    state = voucherify_emulator_state(app)
    state.seed_customers(count=250, segment_id="seg_a")
    state.seed_customers(count=5, source_id_pattern="outsider-{n}")
    return state


async def listing(http: httpx.AsyncClient, **params: str | int) -> httpx.Response:
    return await http.get("/v1/customers", params=params)


async def test_segment_pages_carry_total_and_has_more(
    http: httpx.AsyncClient, state: EmulatorState
) -> None:
    pages = [
        (await listing(http, segment_id="seg_a", limit=100, page=n, order="created_at")).json()
        for n in (1, 2, 3)
    ]
    assert [len(p["customers"]) for p in pages] == [100, 100, 50]
    assert [p["has_more"] for p in pages] == [True, True, False]
    assert {p["total"] for p in pages} == {250}
    assert pages[0]["object"] == "list" and pages[0]["data_ref"] == "customers"
    source_ids = [c["source_id"] for p in pages for c in p["customers"]]
    assert source_ids == [f"customer-{n}" for n in range(1, 251)]


async def test_default_is_ten_customers_newest_first(
    http: httpx.AsyncClient, state: EmulatorState
) -> None:
    body = (await listing(http, segment_id="seg_a")).json()
    assert [c["source_id"] for c in body["customers"]] == [
        f"customer-{n}" for n in range(250, 240, -1)
    ]


async def test_without_segment_every_customer_is_listed(
    http: httpx.AsyncClient, state: EmulatorState
) -> None:
    assert (await listing(http, limit=1)).json()["total"] == 255


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": "ten"},
        {"page": 0},
        {"page": 100},
        {"order": "name"},
        {"starting_after": "yesterday"},
    ],
    ids=["limit-0", "limit-101", "limit-text", "page-0", "page-100", "order", "cursor"],
)
async def test_parameters_beyond_voucherifys_limits_answer_400(
    http: httpx.AsyncClient, state: EmulatorState, params: dict[str, str | int]
) -> None:
    response = await listing(http, segment_id="seg_a", **params)
    assert response.status_code == 400
    assert response.json()["key"] == "invalid_query_params"


async def test_page_99_is_the_last_a_page_number_reaches(
    http: httpx.AsyncClient, state: EmulatorState
) -> None:
    response = await listing(http, segment_id="seg_a", limit=1, page=99, order="created_at")
    assert response.status_code == 200
    assert response.json()["customers"][0]["source_id"] == "customer-99"


async def test_starting_after_lists_customers_created_after_it_in_created_at_order(
    http: httpx.AsyncClient, state: EmulatorState
) -> None:
    hundredth = (await http.get("/v1/customers/customer-100")).json()["created_at"]
    body = (
        await listing(
            http, segment_id="seg_a", limit=100, order="created_at", starting_after=hundredth
        )
    ).json()
    assert [c["source_id"] for c in body["customers"]] == [f"customer-{n}" for n in range(101, 201)]
    assert body["has_more"] is True and body["total"] == 250


async def test_starting_after_with_a_descending_order_lists_older_customers(
    http: httpx.AsyncClient, state: EmulatorState
) -> None:
    third = (await http.get("/v1/customers/customer-3")).json()["created_at"]
    body = (
        await listing(http, segment_id="seg_a", order="-created_at", starting_after=third)
    ).json()
    assert [c["source_id"] for c in body["customers"]] == ["customer-2", "customer-1"]
    assert body["has_more"] is False


async def test_customers_sharing_a_creation_time_are_listed_in_a_stable_order(
    http: httpx.AsyncClient, state: EmulatorState
) -> None:
    moment = datetime(2030, 1, 1, tzinfo=UTC)
    for n in range(3):
        state.add_customer(source_id=f"tie-{n}", created_at=moment, segments=["seg_tie"])
    state.add_customer(source_id="later", created_at=moment + timedelta(seconds=1))
    state.add_to_segment("seg_tie", ["later"])
    body = (await listing(http, segment_id="seg_tie", order="created_at")).json()
    assert [c["source_id"] for c in body["customers"]] == ["tie-0", "tie-1", "tie-2", "later"]


async def test_unknown_segment_answers_404(http: httpx.AsyncClient, state: EmulatorState) -> None:
    response = await listing(http, segment_id="seg_nope")
    assert response.status_code == 404
    assert response.json()["resource_type"] == "segment"
