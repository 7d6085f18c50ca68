"""VoucherifyClient's waits against respx, on a fake clock: 429s, 5xx and transport errors,
and its own rate budget."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr

from app.voucherify.client import VoucherifyClient
from app.voucherify.errors import (
    VoucherifyRateLimitedError,
    VoucherifyRequestError,
    VoucherifyUnavailableError,
)
from tests.voucherify.fakes import FakeClock, error, publication

BASE_URL = "https://api.voucherify.test"
CUSTOMER_PATH = "/v1/customers/c1"
OK = httpx.Response(200, json={"id": "c1"})


@pytest.fixture
def voucherify() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        yield router


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_client(clock: FakeClock, **options: Any) -> VoucherifyClient:
    return VoucherifyClient(
        base_url=BASE_URL,
        app_id="app",
        app_token=SecretStr("token"),
        clock=clock,
        sleep=clock.sleep,
        **options,
    )


@pytest.fixture
async def client(clock: FakeClock) -> AsyncIterator[VoucherifyClient]:
    async with make_client(clock) as client:
        yield client


def limited(**headers: str) -> httpx.Response:
    return httpx.Response(429, json=error(429, "too_many_requests"), headers=headers)


async def test_429_waits_the_retry_after_seconds_then_retries(
    voucherify: respx.MockRouter, client: VoucherifyClient, clock: FakeClock
) -> None:
    route = voucherify.get(CUSTOMER_PATH).mock(side_effect=[limited(**{"Retry-After": "7"}), OK])
    assert await client.get_customer("c1") == {"id": "c1"}
    assert route.call_count == 2
    assert clock.sleeps == [7.0]


async def test_429_waits_until_the_x_rate_limit_retry_unix_second(
    voucherify: respx.MockRouter, client: VoucherifyClient, clock: FakeClock
) -> None:
    next_allowed = str(int(clock.now) + 12)
    voucherify.get(CUSTOMER_PATH).mock(
        side_effect=[limited(**{"X-Rate-Limit-Retry": next_allowed}), OK]
    )
    await client.get_customer("c1")
    assert clock.sleeps == [12.0]
    assert clock.now == int(next_allowed)


async def test_429_retries_a_publication_with_the_same_body(
    voucherify: respx.MockRouter, client: VoucherifyClient, clock: FakeClock
) -> None:
    route = voucherify.post("/v1/publications").mock(
        side_effect=[limited(**{"Retry-After": "2"}), httpx.Response(200, json=publication("A"))]
    )
    result = await client.publish(campaign="welcome", customer={"id": "c1"}, source_id="src-1")
    assert result.code == "A"
    first, second = (call.request.content for call in route.calls)
    assert first == second
    assert clock.sleeps == [2.0]


async def test_429_holds_back_the_clients_other_calls_during_the_wait(
    voucherify: respx.MockRouter, client: VoucherifyClient, clock: FakeClock
) -> None:
    started = clock.now
    others: list[asyncio.Task[dict[str, Any]]] = []
    answers = iter([limited(**{"Retry-After": "30"}), OK])

    def refuse_while_another_call_starts(request: httpx.Request) -> httpx.Response:
        if not others:
            others.append(asyncio.get_running_loop().create_task(client.get_customer("c2")))
        return next(answers)

    sent_at: list[float] = []

    def answer_other(request: httpx.Request) -> httpx.Response:
        sent_at.append(clock.now - started)
        return httpx.Response(200, json={"id": "c2"})

    voucherify.get(CUSTOMER_PATH).mock(side_effect=refuse_while_another_call_starts)
    voucherify.get("/v1/customers/c2").mock(side_effect=answer_other)
    await client.get_customer("c1")
    assert await others[0] == {"id": "c2"}
    assert sent_at == [30.0]


async def test_429_asking_longer_than_allowed_raises_at_once_with_the_wait(
    voucherify: respx.MockRouter, clock: FakeClock
) -> None:
    voucherify.get(CUSTOMER_PATH).mock(side_effect=[limited(**{"Retry-After": "3600"})])
    async with make_client(clock, max_rate_limit_wait=120) as client:
        with pytest.raises(VoucherifyRateLimitedError) as caught:
            await client.get_customer("c1")
    assert caught.value.retry_after == 3600
    assert caught.value.http_status == 429
    assert clock.sleeps == []


async def test_after_a_long_429_no_call_is_sent_until_the_wait_is_over(
    voucherify: respx.MockRouter, clock: FakeClock
) -> None:
    route = voucherify.get(CUSTOMER_PATH).mock(side_effect=[limited(**{"Retry-After": "3600"}), OK])
    async with make_client(clock, max_rate_limit_wait=120) as client:
        with pytest.raises(VoucherifyRateLimitedError):
            await client.get_customer("c1")
        clock.now += 600
        with pytest.raises(VoucherifyRateLimitedError, match="not sent") as caught:
            await client.get_customer("c1")  # another lane, ten minutes later
        assert caught.value.retry_after == 3000
        assert route.call_count == 1
        clock.now += 3000 - 120  # what is left is short enough to wait out
        assert await client.get_customer("c1") == {"id": "c1"}
    assert route.call_count == 2
    assert clock.sleeps == [120.0]


async def test_429_after_429_gives_up_after_the_allowed_retries(
    voucherify: respx.MockRouter, clock: FakeClock
) -> None:
    route = voucherify.get(CUSTOMER_PATH).mock(return_value=limited(**{"Retry-After": "1"}))
    async with make_client(clock, max_rate_limit_retries=2) as client:
        with pytest.raises(VoucherifyRateLimitedError, match="429 3 times"):
            await client.get_customer("c1")
    assert route.call_count == 3
    assert clock.sleeps == [1.0, 1.0]


async def test_429_without_a_hint_backs_off_at_least_a_second(
    voucherify: respx.MockRouter, client: VoucherifyClient, clock: FakeClock
) -> None:
    voucherify.get(CUSTOMER_PATH).mock(side_effect=[limited(), limited(), limited(), OK])
    await client.get_customer("c1")
    assert clock.sleeps == [1.0, 1.0, 2.0]


async def test_5xx_is_retried_with_doubling_backoff_then_succeeds(
    voucherify: respx.MockRouter, client: VoucherifyClient, clock: FakeClock
) -> None:
    route = voucherify.get(CUSTOMER_PATH).mock(
        side_effect=[httpx.Response(500), httpx.Response(503), httpx.Response(502), OK]
    )
    assert await client.get_customer("c1") == {"id": "c1"}
    assert route.call_count == 4
    assert clock.sleeps == [0.5, 1.0, 2.0]


async def test_backoff_is_capped(voucherify: respx.MockRouter, clock: FakeClock) -> None:
    voucherify.get(CUSTOMER_PATH).mock(side_effect=[httpx.Response(503)] * 5 + [OK])
    async with make_client(clock, max_attempts=6, backoff_base=1, backoff_cap=3) as client:
        await client.get_customer("c1")
    assert clock.sleeps == [1.0, 2.0, 3.0, 3.0, 3.0]


@pytest.mark.parametrize(
    "failure",
    [httpx.ReadTimeout("read timed out"), httpx.ConnectError("connection refused")],
    ids=["timeout", "refused"],
)
async def test_timeouts_and_refused_connections_are_retried(
    voucherify: respx.MockRouter, client: VoucherifyClient, failure: Exception
) -> None:
    route = voucherify.get(CUSTOMER_PATH).mock(side_effect=[failure, OK])
    assert await client.get_customer("c1") == {"id": "c1"}
    assert route.call_count == 2


async def test_spent_retries_raise_unavailable_naming_the_last_failure(
    voucherify: respx.MockRouter, clock: FakeClock
) -> None:
    route = voucherify.get(CUSTOMER_PATH).mock(return_value=httpx.Response(503, text="down"))
    async with make_client(clock, max_attempts=3) as client:
        with pytest.raises(VoucherifyUnavailableError) as caught:
            await client.get_customer("c1")
    assert route.call_count == 3
    assert (caught.value.attempts, caught.value.http_status) == (3, 503)
    assert str(caught.value) == "GET /v1/customers/c1 failed 3 times, last with HTTP 503 down"
    assert clock.sleeps == [0.5, 1.0]


async def test_spent_retries_after_timeouts_have_no_status(
    voucherify: respx.MockRouter, clock: FakeClock
) -> None:
    voucherify.get(CUSTOMER_PATH).mock(side_effect=httpx.ReadTimeout("read timed out"))
    async with make_client(clock, max_attempts=2) as client:
        with pytest.raises(VoucherifyUnavailableError, match="ReadTimeout") as caught:
            await client.get_customer("c1")
    assert caught.value.http_status is None


async def test_501_is_not_retried(voucherify: respx.MockRouter, client: VoucherifyClient) -> None:
    route = voucherify.get(CUSTOMER_PATH).respond(501, json=error(501, "not_implemented"))
    with pytest.raises(VoucherifyRequestError, match="501"):
        await client.get_customer("c1")
    assert route.call_count == 1


async def test_rate_budget_spaces_calls_beyond_requests_per_minute(
    voucherify: respx.MockRouter, clock: FakeClock
) -> None:
    voucherify.get(CUSTOMER_PATH).mock(return_value=OK)
    started = clock.now
    async with make_client(clock, requests_per_minute=2) as client:
        moments = []
        for _ in range(5):
            await client.get_customer("c1")
            moments.append(clock.now - started)
    assert moments == [0, 0, 60, 60, 120]


async def test_rate_budget_holds_concurrent_callers_to_the_budget(
    voucherify: respx.MockRouter, clock: FakeClock
) -> None:
    sent_at: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent_at.append(clock.now)
        return OK

    voucherify.get(CUSTOMER_PATH).mock(side_effect=answer)
    async with make_client(clock, requests_per_minute=3) as client:
        await asyncio.gather(*(client.get_customer("c1") for _ in range(7)))
    start = sent_at[0]
    assert [t - start for t in sent_at] == [0, 0, 0, 60, 60, 60, 120]


async def test_retries_count_against_the_rate_budget(
    voucherify: respx.MockRouter, clock: FakeClock
) -> None:
    voucherify.get(CUSTOMER_PATH).mock(side_effect=[httpx.Response(500), OK])
    async with make_client(clock, requests_per_minute=1) as client:
        await client.get_customer("c1")
    assert clock.sleeps == [0.5, 59.5]  # the backoff, then the rest of the minute
