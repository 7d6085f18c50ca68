"""VoucherifyClient walking a segment against respx: the cursor requests it makes, and every
member exactly once whether `starting_after` is exclusive or inclusive, ties included."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr

from app.voucherify.client import VoucherifyClient
from app.voucherify.errors import VoucherifyError
from app.voucherify.segments import format_timestamp

BASE_URL = "https://api.voucherify.test"
START = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


@pytest.fixture
def voucherify() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        yield router


@pytest.fixture
async def client() -> AsyncIterator[VoucherifyClient]:
    async with VoucherifyClient(
        base_url=BASE_URL,
        app_id="app",
        app_token=SecretStr("token"),
        requests_per_minute=10_000,
    ) as client:
        yield client


def customers(count: int, *, tied: range = range(0)) -> list[dict[str, Any]]:
    """`count` customers a millisecond apart, except those in `tied`, which share one time."""
    made = []
    for n in range(count):
        at = START + timedelta(milliseconds=tied.start if n in tied else n)
        made.append({"id": f"cust_{n:05d}", "created_at": format_timestamp(at)})
    return made


def segment(
    members: list[dict[str, Any]], *, inclusive: bool = False
) -> Callable[[httpx.Request], httpx.Response]:
    """Answers `GET /v1/customers` in created_at order with the cursor compared `>` (or `>=`)."""

    def answer(request: httpx.Request) -> httpx.Response:
        params = request.url.params
        limit = int(params["limit"])
        rest = members
        if "starting_after" in params:
            after = datetime.fromisoformat(params["starting_after"])
            rest = [
                c
                for c in members
                if (created := datetime.fromisoformat(c["created_at"])) > after
                or (inclusive and created == after)
            ]
        body = {
            "object": "list",
            "data_ref": "customers",
            "customers": rest[:limit],
            "total": len(members),
            "has_more": len(rest) > limit,
        }
        return httpx.Response(200, json=body)

    return answer


async def walk(client: VoucherifyClient, *, page_size: int = 100) -> list[str]:
    return [c["id"] async for c in client.iter_segment_members("seg_1", page_size=page_size)]


async def test_walk_asks_by_created_at_cursor_never_by_page_number(
    voucherify: respx.MockRouter, client: VoucherifyClient
) -> None:
    members = customers(250)
    route = voucherify.get("/v1/customers").mock(side_effect=segment(members))
    assert await walk(client) == [c["id"] for c in members]
    requests = [dict(call.request.url.params) for call in route.calls]
    assert requests[0] == {"segment_id": "seg_1", "limit": "100", "order": "created_at"}
    # Each next page starts 1 ms before the newest customer already yielded.
    assert requests[1]["starting_after"] == "2026-01-15T12:00:00.098Z"
    assert requests[2]["starting_after"] == "2026-01-15T12:00:00.197Z"
    assert len(requests) == 3 and not any("page" in r for r in requests)


@pytest.mark.parametrize("inclusive", [False, True], ids=["exclusive", "inclusive"])
async def test_every_member_is_yielded_once_whichever_way_the_cursor_compares(
    voucherify: respx.MockRouter, client: VoucherifyClient, inclusive: bool
) -> None:
    members = customers(1_001)
    voucherify.get("/v1/customers").mock(side_effect=segment(members, inclusive=inclusive))
    ids = await walk(client, page_size=37)
    assert ids == [c["id"] for c in members]


@pytest.mark.parametrize("inclusive", [False, True], ids=["exclusive", "inclusive"])
async def test_customers_sharing_a_creation_time_across_a_page_boundary_are_all_yielded(
    voucherify: respx.MockRouter, client: VoucherifyClient, inclusive: bool
) -> None:
    members = customers(60, tied=range(15, 35))  # 20 customers in one millisecond
    voucherify.get("/v1/customers").mock(side_effect=segment(members, inclusive=inclusive))
    ids = await walk(client, page_size=25)
    assert sorted(ids) == sorted(c["id"] for c in members)
    assert len(ids) == len(set(ids)) == 60


async def test_more_customers_in_one_millisecond_than_a_page_raise(
    voucherify: respx.MockRouter, client: VoucherifyClient
) -> None:
    members = customers(30, tied=range(0, 30))
    voucherify.get("/v1/customers").mock(side_effect=segment(members))
    with pytest.raises(VoucherifyError, match="more than 10 customers were created at"):
        await walk(client, page_size=10)


async def test_empty_segment_yields_nothing_after_one_request(
    voucherify: respx.MockRouter, client: VoucherifyClient
) -> None:
    route = voucherify.get("/v1/customers").mock(side_effect=segment([]))
    assert await walk(client) == []
    assert route.call_count == 1


@pytest.mark.parametrize("page_size", [0, 101])
async def test_page_size_outside_voucherifys_limit_is_refused(
    client: VoucherifyClient, page_size: int
) -> None:
    with pytest.raises(ValueError, match=r"1\.\.100"):
        await walk(client, page_size=page_size)


async def test_member_without_created_at_is_an_error_not_a_silent_skip(
    voucherify: respx.MockRouter, client: VoucherifyClient
) -> None:
    body = {"object": "list", "customers": [{"id": "cust_1"}], "total": 1, "has_more": False}
    voucherify.get("/v1/customers").respond(200, json=body)
    with pytest.raises(VoucherifyError, match="without id or created_at"):
        await walk(client)


async def test_count_segment_reads_the_total_of_a_one_customer_page(
    voucherify: respx.MockRouter, client: VoucherifyClient
) -> None:
    route = voucherify.get("/v1/customers").mock(side_effect=segment(customers(9_950)))
    assert await client.count_segment("seg_1") == 9_950
    assert dict(route.calls.last.request.url.params) == {"segment_id": "seg_1", "limit": "1"}
