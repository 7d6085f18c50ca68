"""The Braze emulator in process, through httpx.ASGITransport."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.sandbox.braze.emulator import create_emulator, emulator_state
from app.sandbox.braze.state import EmulatorState

API_KEY = "emulator-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def app(clock: FakeClock) -> FastAPI:
    return create_emulator(api_key=API_KEY, rate_limit=5, clock=clock)


@pytest.fixture
def state(app: FastAPI) -> EmulatorState:
    return emulator_state(app)


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://braze.test") as client:
        yield client


async def track(http: httpx.AsyncClient, body: Any, **headers: str) -> httpx.Response:
    return await http.post("/users/track", json=body, headers={**AUTH, **headers})


def users(count: int, **attributes: Any) -> list[dict[str, Any]]:
    return [{"external_id": f"u{i}", **attributes} for i in range(count)]


async def test_valid_request_answers_201_with_count_and_rate_limit_headers(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    response = await track(http, {"attributes": users(2, code="A")})
    assert response.status_code == 201
    assert response.json() == {"message": "success", "attributes_processed": 2}
    assert response.headers["X-RateLimit-Limit"] == "5"
    assert response.headers["X-RateLimit-Remaining"] == "4"
    assert int(response.headers["X-RateLimit-Reset"]) > clock.now  # epoch seconds


async def test_attributes_are_kept_per_user_and_null_unsets_them(
    http: httpx.AsyncClient, state: EmulatorState
) -> None:
    await track(http, {"attributes": [{"external_id": "u1", "code": "A", "points": 5}]})
    await track(http, {"attributes": [{"external_id": "u1", "code": None, "points": {"inc": 2}}]})
    await track(http, {"attributes": [{"email": "a@b.c", "tags": {"add": ["x", "y"]}}]})
    await track(http, {"attributes": [{"email": "a@b.c", "tags": {"add": ["x"], "remove": ["y"]}}]})
    profiles = (await http.get("/_emulator/profiles")).json()
    assert profiles == {"external_id:u1": {"points": 7}, "email:a@b.c": {"tags": ["x"]}}
    assert state.profiles == profiles


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": "Bearer wrong"}, {"Authorization": API_KEY}, {"Authorization": ""}],
)
async def test_missing_or_wrong_key_answers_401(
    http: httpx.AsyncClient, state: EmulatorState, headers: dict[str, str]
) -> None:
    response = await http.post("/users/track", json={"attributes": users(1)}, headers=headers)
    assert response.status_code == 401
    assert state.profiles == {}


async def test_body_not_declared_as_json_answers_415(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/users/track",
        content=b'{"attributes": []}',
        headers={**AUTH, "Content-Type": "text/plain"},
    )
    assert response.status_code == 415


async def test_unparsable_body_answers_400(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/users/track", content=b"{nope", headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "parsing request body" in response.json()["message"]


async def test_body_without_any_object_answers_400(http: httpx.AsyncClient) -> None:
    response = await track(http, {"attributes": []})
    assert response.status_code == 400
    assert response.json()["message"].startswith("Valid data must be provided")


async def test_75_objects_across_arrays_are_accepted(http: httpx.AsyncClient) -> None:
    events = [{"external_id": "u0", "name": "e", "time": "2026-01-01"}] * 25
    response = await track(http, {"attributes": users(50), "events": events})
    assert response.status_code == 201
    assert response.json() == {
        "message": "success",
        "attributes_processed": 50,
        "events_processed": 25,
    }


async def test_76_objects_across_arrays_answer_400(
    http: httpx.AsyncClient, state: EmulatorState
) -> None:
    purchases = [{"external_id": "u0", "product_id": "p", "price": 1}]
    response = await track(http, {"attributes": users(75), "purchases": purchases})
    assert response.status_code == 400
    assert response.json() == {"message": "Max Input Length Exceeded"}
    assert state.profiles == {}


async def test_objects_without_exactly_one_identifier_get_indexed_errors_others_apply(
    http: httpx.AsyncClient, state: EmulatorState
) -> None:
    attributes = [
        {"external_id": "u1", "code": "A"},
        {"code": "B"},
        {"external_id": "u3", "braze_id": "b3", "code": "C"},
        {"user_alias": {"alias_name": "n"}, "code": "D"},
    ]
    response = await track(http, {"attributes": attributes})
    assert response.status_code == 201
    body = response.json()
    assert body["message"] == "success" and body["attributes_processed"] == 1
    assert [(e["input_array"], e["index"]) for e in body["errors"]] == [
        ("attributes", 1),
        ("attributes", 2),
        ("attributes", 3),
    ]
    assert body["errors"][0]["type"] == "'external_id' or 'braze_id' or 'user_alias' is required"
    assert state.profiles == {"external_id:u1": {"code": "A"}}


async def test_request_with_no_valid_object_answers_400_with_indexes(
    http: httpx.AsyncClient,
) -> None:
    response = await track(http, {"attributes": [{"code": "A"}, {"code": "B"}]})
    assert response.status_code == 400
    assert [e["index"] for e in response.json()["errors"]] == [0, 1]


async def test_string_over_255_characters_is_dropped_silently_like_braze(
    http: httpx.AsyncClient, state: EmulatorState
) -> None:
    response = await track(http, {"attributes": [{"external_id": "u1", "a": "x" * 256, "b": "ok"}]})
    assert response.status_code == 201 and "errors" not in response.json()
    assert state.profiles == {"external_id:u1": {"b": "ok"}}
    assert state.requests[-1].ignored == ("attributes[0].a",)


async def test_update_existing_only_and_aliases_do_not_create_profiles(
    http: httpx.AsyncClient, state: EmulatorState
) -> None:
    alias = {"alias_name": "n", "alias_label": "crm"}
    await track(http, {"attributes": [{"external_id": "u1", "_update_existing_only": True}]})
    await track(http, {"attributes": [{"user_alias": alias, "code": "A"}]})
    assert state.profiles == {}
    await track(http, {"attributes": [{"user_alias": alias, "_update_existing_only": False}]})
    await track(http, {"attributes": [{"user_alias": alias, "code": "B"}]})
    assert state.profiles == {"user_alias:crm:n": {"code": "B"}}


async def test_full_rate_window_answers_429_with_retry_after_until_it_resets(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    clock.now = 1_800_000_001.0  # one second into a 3-second window
    statuses = [(await track(http, {"attributes": users(1)})).status_code for _ in range(6)]
    assert statuses == [201] * 5 + [429]
    limited = await track(http, {"attributes": users(1)})
    assert limited.headers["X-Ratelimit-Retry-After"] == "2"
    assert "X-RateLimit-Remaining" not in limited.headers
    clock.now += 2
    assert (await track(http, {"attributes": users(1)})).status_code == 201


async def test_reset_header_can_be_seconds_left(clock: FakeClock) -> None:
    app = create_emulator(api_key=API_KEY, reset_format="seconds", clock=clock)
    clock.now = 1_800_000_000.5
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://braze.test"
    ) as http:
        response = await track(http, {"attributes": users(1)})
    assert response.headers["X-RateLimit-Reset"] == "3"


async def test_fail_next_answers_queued_statuses_then_recovers(
    http: httpx.AsyncClient, state: EmulatorState
) -> None:
    state.faults.fail_next(1, status=429, retry_after=2)
    state.faults.fail_next(2, status=500)
    state.faults.fail_next(1, status=401)
    responses = [await track(http, {"attributes": users(1)}) for _ in range(5)]
    assert [r.status_code for r in responses] == [429, 500, 500, 401, 201]
    assert responses[0].headers["X-Ratelimit-Retry-After"] == "2"
    assert state.faults.pending_failures == 0
    assert [r.fault for r in state.requests] == ["fail_next"] * 4 + [None]


async def test_latency_delays_every_answer(http: httpx.AsyncClient, state: EmulatorState) -> None:
    state.faults.latency_ms = 150
    started = time.perf_counter()
    await track(http, {"attributes": users(1)})
    assert time.perf_counter() - started >= 0.15
    assert state.requests[-1].delay_ms == 150


async def test_slow_fraction_delays_about_that_share_of_answers(
    http: httpx.AsyncClient, state: EmulatorState
) -> None:
    state.faults.slow_fraction = 0.5
    state.faults.slow_ms = 1
    state.rate_limit = 1000
    for _ in range(60):
        await track(http, {"attributes": users(1)})
    slow = sum(1 for r in state.requests if r.delay_ms == 1)
    assert 15 <= slow <= 45


async def test_random_server_errors_follow_the_rate_and_the_seed(clock: FakeClock) -> None:
    async def statuses(seed: int) -> list[int]:
        app = create_emulator(api_key=API_KEY, seed=seed, clock=clock)
        emulator_state(app).faults.error_rate = 0.3
        emulator_state(app).faults.error_status = 503
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://b.test") as http:
            return [(await track(http, {"attributes": users(1)})).status_code for _ in range(100)]

    first, again = await statuses(seed=1), await statuses(seed=1)
    assert first == again
    assert set(first) == {201, 503}
    assert 15 <= first.count(503) <= 45


async def test_object_errors_fail_only_the_chosen_users(
    http: httpx.AsyncClient, state: EmulatorState
) -> None:
    state.faults.object_errors = {"external_id:u1": "BLACKLISTED_EXTERNAL_USER_ID"}
    response = await track(http, {"attributes": users(3, code="A")})
    assert response.status_code == 201
    assert response.json()["errors"] == [
        {"type": "BLACKLISTED_EXTERNAL_USER_ID", "input_array": "attributes", "index": 1}
    ]
    assert set(state.profiles) == {"external_id:u0", "external_id:u2"}


async def test_body_over_the_injected_size_limit_answers_413(
    http: httpx.AsyncClient, state: EmulatorState
) -> None:
    state.faults.max_body_bytes = 100
    assert (await track(http, {"attributes": users(1)})).status_code == 201
    response = await track(http, {"attributes": users(5, code="A")})
    assert response.status_code == 413
    assert state.requests[-1].fault == "max_body_bytes"


async def test_outage_window_answers_503_only_while_it_lasts(
    http: httpx.AsyncClient, state: EmulatorState, clock: FakeClock
) -> None:
    state.faults.start_outage(10, start_in=5)
    before = await track(http, {"attributes": users(1)})
    clock.now += 5
    during = await track(http, {"attributes": users(1)})
    clock.now += 10
    after = await track(http, {"attributes": users(1)})
    assert [before.status_code, during.status_code, after.status_code] == [201, 503, 201]
    assert state.requests[1].fault == "outage"


async def test_faults_set_over_http_apply_and_reset_clears_everything(
    http: httpx.AsyncClient, state: EmulatorState
) -> None:
    update = {
        "fail_next": [{"count": 1, "status": 429, "reset": 4}],
        "latency_ms": 1,
        "object_errors": {"external_id:u0": "nope"},
    }
    described = (await http.post("/_emulator/faults", json=update)).json()
    assert described["latency_ms"] == 1
    assert described["pending_failures"] == [{"status": 429, "headers": {"X-RateLimit-Reset": "4"}}]
    limited = await track(http, {"attributes": users(1)})
    assert (limited.status_code, limited.headers["X-RateLimit-Reset"]) == (429, "4")
    errored = await track(http, {"attributes": users(2)})
    assert [e["index"] for e in errored.json()["errors"]] == [0]

    assert (await http.post("/_emulator/reset")).status_code == 204
    assert (await http.get("/_emulator/profiles")).json() == {}
    assert (await http.get("/_emulator/requests")).json() == []
    assert (await http.get("/_emulator/faults")).json()["object_errors"] == {}
    assert state.faults.latency_ms == 0


async def test_outage_and_null_fields_over_http(
    http: httpx.AsyncClient, state: EmulatorState
) -> None:
    await http.post("/_emulator/faults", json={"outage": {"seconds": 60}, "max_body_bytes": 10})
    assert (await track(http, {"attributes": users(1)})).status_code == 503
    await http.post("/_emulator/faults", json={"outage": None, "max_body_bytes": None})
    assert (await track(http, {"attributes": users(1)})).status_code == 201


async def test_unknown_fault_field_is_refused(http: httpx.AsyncClient) -> None:
    response = await http.post("/_emulator/faults", json={"latency": 5})
    assert response.status_code == 422


async def test_request_log_keeps_time_object_count_and_status(
    http: httpx.AsyncClient, clock: FakeClock
) -> None:
    await track(http, {"attributes": users(3)})
    await http.post("/users/track", json={"attributes": users(2)})
    log = (await http.get("/_emulator/requests")).json()
    assert [(r["object_count"], r["status"]) for r in log] == [(3, 201), (2, 401)]
    assert log[0]["at"] == "2027-01-15T08:00:00+00:00"
    assert log[0]["error_indexes"] == [] and log[0]["body_bytes"] > 0
