from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import respx
from pydantic import SecretStr

from app.braze.classify import Kind
from app.braze.client import BrazeCallResult, BrazeClient

BASE_URL = "https://rest.braze.test"
API_KEY = "sk-braze-0123456789abcdef"
NOW = datetime(2026, 1, 15, 12, 0, 0, tzinfo=UTC)
OBJECTS = [{"external_id": "u1", "code": "A-1"}, {"external_id": "u2", "code": "B-2"}]


@pytest.fixture
def braze() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        yield router


@pytest.fixture
async def client() -> AsyncIterator[BrazeClient]:
    client = BrazeClient(
        base_url=f"{BASE_URL}/", api_key=SecretStr(API_KEY), timeout=5, clock=lambda: NOW
    )
    yield client
    await client.aclose()


async def test_track_posts_compact_json_with_bearer_key(
    braze: respx.MockRouter, client: BrazeClient
) -> None:
    route = braze.post("/users/track").respond(201, json={"message": "success"})
    await client.track(OBJECTS)
    request = route.calls.last.request
    assert request.url == f"{BASE_URL}/users/track"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.content == json.dumps({"attributes": OBJECTS}, separators=(",", ":")).encode()


async def test_result_records_status_kept_headers_body_duration_and_size(
    braze: respx.MockRouter, client: BrazeClient
) -> None:
    braze.post("/users/track").respond(
        201,
        json={"message": "success", "attributes_processed": 2},
        headers={"X-RateLimit-Remaining": "41", "Set-Cookie": "session=1"},
    )
    result = await client.track(OBJECTS)
    assert result.kind is Kind.DELIVERED
    assert result.status_code == 201
    assert result.headers == {"x-ratelimit-remaining": "41", "content-type": "application/json"}
    assert json.loads(result.body) == {"message": "success", "attributes_processed": 2}
    assert result.duration > timedelta(0)
    assert result.request_bytes == len(json.dumps({"attributes": OBJECTS}, separators=(",", ":")))
    assert result.object_count == 2
    assert result.error is None
    assert result.classification.rate_limit is not None
    assert result.classification.rate_limit.remaining == 41


async def test_long_body_is_truncated_but_classified_whole(
    braze: respx.MockRouter, client: BrazeClient
) -> None:
    errors = [{"type": "x" * 100, "input_array": "attributes", "index": i} for i in range(60)]
    braze.post("/users/track").respond(201, json={"message": "success", "errors": errors})
    objects = [{"external_id": f"u{i}"} for i in range(75)]
    result = await client.track(objects)
    assert len(result.body) == 2000
    assert result.classification.failed.keys() == set(range(60))
    assert result.classification.delivered_indexes == set(range(60, 75))


async def test_epoch_reset_is_read_against_the_injected_clock(
    braze: respx.MockRouter, client: BrazeClient
) -> None:
    reset = str(int(NOW.timestamp()) + 3)
    braze.post("/users/track").respond(429, headers={"X-RateLimit-Reset": reset})
    result = await client.track(OBJECTS)
    assert result.kind is Kind.RATE_LIMITED
    assert result.classification.retry_after == timedelta(seconds=3)


async def test_timeout_becomes_a_retry_result_not_an_exception(
    braze: respx.MockRouter, client: BrazeClient
) -> None:
    braze.post("/users/track").mock(side_effect=httpx.ReadTimeout("read timed out"))
    result = await client.track(OBJECTS)
    assert result.kind is Kind.RETRY
    assert result.status_code is None
    assert result.error == "ReadTimeout: read timed out"
    assert result.headers == {} and result.body == ""


async def test_refused_connection_becomes_a_retry_result(
    braze: respx.MockRouter, client: BrazeClient
) -> None:
    braze.post("/users/track").mock(side_effect=httpx.ConnectError("connection refused"))
    result = await client.track(OBJECTS)
    assert result.kind is Kind.RETRY
    assert result.error == "ConnectError: connection refused"


@pytest.mark.parametrize("count", [0, 76])
async def test_track_refuses_calls_braze_cannot_take(client: BrazeClient, count: int) -> None:
    with pytest.raises(ValueError, match=r"1\.\.75 objects"):
        await client.track([{"external_id": f"u{i}"} for i in range(count)])


def _leaks(result: BrazeCallResult) -> bool:
    return API_KEY in repr(result) or any(API_KEY in v for v in result.headers.values())


async def test_api_key_never_appears_in_repr_results_or_logs(
    braze: respx.MockRouter, client: BrazeClient, caplog: pytest.LogCaptureFixture
) -> None:
    # A proxy or a misbehaving Braze echoing the key back must not carry it into the audit log.
    echo = f"Invalid API key: {API_KEY}"
    caplog.set_level(logging.DEBUG)
    braze.post("/users/track").mock(
        side_effect=[
            httpx.Response(401, json={"message": echo}, headers={"X-Request-Id": API_KEY}),
            httpx.ConnectError(f"cannot reach https://{API_KEY}@rest.braze.test"),
        ]
    )
    answered = await client.track(OBJECTS)
    failed = await client.track(OBJECTS)
    assert answered.kind is Kind.CONFIG_ERROR and failed.kind is Kind.RETRY
    assert answered.classification.message == "Invalid API key: **********"
    assert not _leaks(answered) and not _leaks(failed)
    assert API_KEY not in repr(client) and API_KEY not in str(client)
    assert API_KEY not in repr(vars(client))
    assert caplog.records and all(API_KEY not in r.getMessage() for r in caplog.records)


async def test_client_closes_its_pool_when_used_as_a_context_manager(
    braze: respx.MockRouter,
) -> None:
    braze.post("/users/track").respond(201, json={"message": "success"})
    async with BrazeClient(base_url=BASE_URL, api_key=SecretStr(API_KEY)) as client:
        assert (await client.track(OBJECTS)).kind is Kind.DELIVERED
    with pytest.raises(RuntimeError):
        await client.track(OBJECTS)


async def test_an_answer_that_trickles_in_past_the_timeout_is_cut_at_the_deadline() -> None:
    # Each piece comes within any per-read timeout; together they outlast the call's budget.
    async def trickle() -> AsyncIterator[bytes]:
        for _ in range(40):
            await asyncio.sleep(0.05)
            yield b" "

    def slow(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, content=trickle())

    client = BrazeClient(
        base_url=BASE_URL, api_key=SecretStr(API_KEY), timeout=0.3,
        transport=httpx.MockTransport(slow),
    )  # fmt: skip
    try:
        result = await client.track(OBJECTS)
    finally:
        await client.aclose()
    assert result.kind is Kind.RETRY
    assert result.error is not None and "within 0.3 s" in result.error
    assert result.duration < timedelta(seconds=1.5)
