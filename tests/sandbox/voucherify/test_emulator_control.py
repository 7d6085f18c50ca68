"""The Voucherify emulator's rate limit, faults, seeding, inspection and reset, in process."""

from __future__ import annotations

import time

import httpx
import pytest
from fastapi import FastAPI

from app.sandbox.voucherify.emulator import create_voucherify_emulator, voucherify_emulator_state
from app.sandbox.voucherify.state import EmulatorState
from tests.voucherify.fakes import APP_ID, APP_TOKEN, FakeClock

START = 1_800_000_010.0  # ten seconds into a minute


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def app(clock: FakeClock) -> FastAPI:
    return create_voucherify_emulator(
        app_id=APP_ID, app_token=APP_TOKEN, requests_per_minute=3, clock=clock
    )


@pytest.fixture
def state(app: FastAPI) -> EmulatorState:
    state = voucherify_emulator_state(app)
    state.add_customer(source_id="u1")
    return state


async def get_customer(http: httpx.AsyncClient) -> httpx.Response:
    return await http.get("/v1/customers/u1")


async def test_full_rate_window_answers_429_with_both_waits_until_the_next_minute(
    http: httpx.AsyncClient, state: EmulatorState, clock: FakeClock
) -> None:
    answers = [await get_customer(http) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["X-Rate-Limit-Remaining"] for a in answers[:3]] == ["2", "1", "0"]
    assert answers[0].headers["X-Rate-Limit-Limit"] == "3"
    limited = answers[3]
    assert limited.json()["code"] == 429 and limited.json()["message"] == "API limit reached"
    assert limited.headers["Retry-After"] == "50"
    assert limited.headers["X-Rate-Limit-Retry"] == str(int(START) + 50)
    assert limited.headers["X-Rate-Limit-Type"] == "api_calls"
    clock.now += 50
    assert (await get_customer(http)).status_code == 200


async def test_control_endpoints_neither_count_against_the_limit_nor_need_auth(
    app: FastAPI, state: EmulatorState
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://v.test") as anonymous:
        statuses = [(await anonymous.get("/_emulator/requests")).status_code for _ in range(5)]
    assert statuses == [200] * 5
    assert state.requests == []


async def test_injected_failures_answer_in_place_of_the_api_then_stop(
    http: httpx.AsyncClient, state: EmulatorState, clock: FakeClock
) -> None:
    state.rate.limit = None
    state.faults.fail_next(2, status=503)
    state.faults.fail_next(status=429, retry_after=4, retry_in=9)
    answers = [await get_customer(http) for _ in range(4)]
    assert [a.status_code for a in answers] == [503, 503, 429, 200]
    assert answers[0].json() == {
        "code": 503,
        "key": "service_unavailable",
        "message": "Service Unavailable",
    }
    assert answers[2].headers["Retry-After"] == "4"
    assert answers[2].headers["X-Rate-Limit-Retry"] == str(int(START) + 9)
    assert [r["fault"] for r in state.requests] == ["fail_next"] * 3 + [None]


async def test_faults_are_set_and_shown_over_http(
    http: httpx.AsyncClient, state: EmulatorState
) -> None:
    update = {"fail_next": [{"status": 500, "count": 2}], "latency_ms": 30}
    shown = (await http.post("/_emulator/faults", json=update)).json()
    assert shown == {"latency_ms": 30, "pending_failures": [{"status": 500}] * 2}
    started = time.perf_counter()
    assert (await get_customer(http)).status_code == 500
    assert time.perf_counter() - started >= 0.03
    cleared = (await http.post("/_emulator/faults", json={"clear": True})).json()
    assert cleared == {"latency_ms": 0.0, "pending_failures": []}


async def test_customers_segments_and_campaigns_are_seeded_over_http(
    http: httpx.AsyncClient, state: EmulatorState
) -> None:
    state.rate.limit = None
    seeded = await http.post(
        "/_emulator/customers",
        json={
            "customers": [{"source_id": "ana", "email": "ana@example.com", "segments": ["seg_x"]}],
            "generate": {"count": 20, "segment_id": "seg_x", "source_id_pattern": "gen-{n}"},
        },
    )
    joined = await http.post("/_emulator/segments", json={"id": "seg_x", "customers": ["u1"]})
    campaign = await http.post(
        "/_emulator/campaigns",
        json={
            "name": "spring",
            "count": 2,
            "pattern": "SPR-##",
            "expiration_date": "2027-03-01T00:00:00Z",
        },
    )
    assert seeded.json() == {"created": 21} and joined.status_code == 204
    assert campaign.json()["codes"] == ["SPR-01", "SPR-02"]
    page = (await http.get("/v1/customers", params={"segment_id": "seg_x", "limit": 1})).json()
    assert page["total"] == 22
    published = await http.post(
        "/v1/publications",
        json={"campaign": {"name": "spring"}, "customer": {"source_id": "ana"}, "source_id": "p1"},
    )
    assert published.json()["voucher"]["expiration_date"] == "2027-03-01T00:00:00.000Z"


async def test_bad_seeds_answer_400_naming_the_problem(
    http: httpx.AsyncClient, state: EmulatorState
) -> None:
    twice = await http.post("/_emulator/customers", json={"customers": [{"source_id": "u1"}]})
    stranger = await http.post("/_emulator/segments", json={"id": "seg", "customers": ["ghost"]})
    both = await http.post("/_emulator/campaigns", json={"name": "x", "codes": ["A"], "count": 1})
    assert (twice.status_code, twice.json()["message"]) == (400, "customer u1 exists")
    assert (stranger.status_code, stranger.json()["message"]) == (400, "no customer ghost")
    assert both.status_code == 422


async def test_publications_show_who_got_which_code(
    http: httpx.AsyncClient, state: EmulatorState
) -> None:
    state.rate.limit = None
    state.add_campaign(name="welcome", codes=["A", "B"])
    for customer in ("u1", "u2"):
        body = {"campaign": "welcome", "customer": {"source_id": customer}, "source_id": customer}
        await http.post("/v1/publications", json=body)
    shown = (await http.get("/_emulator/publications")).json()
    assert [(p["code"], p["customer_source_id"], p["source_id"]) for p in shown] == [
        ("A", "u1", "u1"),
        ("B", "u2", "u2"),
    ]
    assert {p["campaign"] for p in shown} == {"welcome"}


async def test_request_log_records_each_api_call(
    http: httpx.AsyncClient, state: EmulatorState
) -> None:
    await http.get("/v1/customers", params={"limit": 5, "order": "created_at"})
    await http.get("/v1/customers/ghost")
    log = (await http.get("/_emulator/requests")).json()
    assert [(r["method"], r["path"], r["query"], r["status"]) for r in log] == [
        ("GET", "/v1/customers", "limit=5&order=created_at", 200),
        ("GET", "/v1/customers/ghost", "", 404),
    ]


async def test_reset_forgets_data_log_window_and_faults(
    http: httpx.AsyncClient, state: EmulatorState
) -> None:
    state.add_campaign(name="welcome", count=1)
    state.faults.fail_next(status=500)
    await get_customer(http)
    assert (await http.post("/_emulator/reset")).status_code == 204
    assert state.campaigns == {} and state.requests == [] and state.faults.pending_failures == 0
    assert (await get_customer(http)).status_code == 404
