"""VoucherifyClient against respx: what it sends, what it returns, what it raises."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import respx
from pydantic import SecretStr

from app.voucherify.client import VoucherifyClient
from app.voucherify.errors import (
    CampaignExhaustedError,
    CampaignNotFoundError,
    CustomerNotFoundError,
    VoucherifyRequestError,
    VoucherifyUnavailableError,
)
from tests.voucherify.fakes import FakeClock, error, publication, simple_voucher

BASE_URL = "https://api.voucherify.test"
APP_ID = "1b2c3d4e-app-id"
APP_TOKEN = "vf-token-0123456789abcdef"
CUSTOMER = {"source_id": "braze-usr-1", "email": "ana@example.com"}


@pytest.fixture
def voucherify() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        yield router


@pytest.fixture
async def client() -> AsyncIterator[VoucherifyClient]:
    clock = FakeClock()
    client = VoucherifyClient(
        base_url=f"{BASE_URL}/",
        app_id=APP_ID,
        app_token=SecretStr(APP_TOKEN),
        timeout=5,
        clock=clock,
        sleep=clock.sleep,
    )
    yield client
    await client.aclose()


async def test_publish_posts_campaign_customer_and_source_id_with_app_headers(
    voucherify: respx.MockRouter, client: VoucherifyClient
) -> None:
    route = voucherify.post("/v1/publications").respond(200, json=publication("WELCOME-1"))
    result = await client.publish(campaign="welcome", customer=CUSTOMER, source_id="src-1")
    request = route.calls.last.request
    assert request.url == f"{BASE_URL}/v1/publications"
    assert request.headers["x-app-id"] == APP_ID
    assert request.headers["x-app-token"] == APP_TOKEN
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {
        "campaign": {"name": "welcome"},
        "customer": CUSTOMER,
        "source_id": "src-1",
    }
    assert (result.id, result.code, result.source_id, result.reused) == (
        "pub_WELCOME-1",
        "WELCOME-1",
        "src-1",
        False,
    )
    assert result.voucher == simple_voucher("WELCOME-1")


async def test_duplicate_source_id_reads_back_the_same_code(
    voucherify: respx.MockRouter, client: VoucherifyClient
) -> None:
    voucherify.post("/v1/publications").mock(
        side_effect=[
            httpx.Response(200, json=publication("WELCOME-1")),
            httpx.Response(400, json=error(400, "duplicate_source_id")),
        ]
    )
    listing = voucherify.get("/v1/publications").respond(
        200, json={"object": "list", "publications": [publication("WELCOME-1")], "total": 1}
    )
    first = await client.publish(campaign="welcome", customer=CUSTOMER, source_id="src-1")
    again = await client.publish(campaign="welcome", customer=CUSTOMER, source_id="src-1")
    assert again.code == first.code == "WELCOME-1"
    assert again.voucher == first.voucher
    assert again.reused and not first.reused
    assert listing.calls.last.request.url.params["source_id"] == "src-1"


async def test_read_back_with_only_voucher_ids_fetches_the_voucher(
    voucherify: respx.MockRouter, client: VoucherifyClient
) -> None:
    voucherify.post("/v1/publications").respond(400, json=error(400, "duplicate_source_id"))
    listed = publication("WELCOME-7")
    del listed["voucher"]
    voucherify.get("/v1/publications").respond(
        200, json={"object": "list", "publications": [listed]}
    )
    voucher = voucherify.get("/v1/vouchers/v_WELCOME-7").respond(
        200, json=simple_voucher("WELCOME-7")
    )
    result = await client.publish(campaign="welcome", customer=CUSTOMER, source_id="src-1")
    assert voucher.called
    assert (result.code, result.reused, result.id) == ("WELCOME-7", True, "pub_WELCOME-7")
    assert result.voucher["expiration_date"] == "2026-12-31T23:59:59.000Z"


async def test_read_back_refuses_a_publication_made_for_another_customer(
    voucherify: respx.MockRouter, client: VoucherifyClient
) -> None:
    voucherify.post("/v1/publications").respond(400, json=error(400, "duplicate_source_id"))
    voucherify.get("/v1/publications").respond(
        200, json={"object": "list", "publications": [publication("WELCOME-1")]}
    )
    with pytest.raises(VoucherifyRequestError, match="published to customer") as caught:
        await client.publish(
            campaign="welcome", customer={"source_id": "someone-else"}, source_id="src-1"
        )
    assert caught.value.key == "duplicate_source_id"


async def test_duplicate_source_id_without_a_listed_publication_is_an_error(
    voucherify: respx.MockRouter, client: VoucherifyClient
) -> None:
    voucherify.post("/v1/publications").respond(400, json=error(400, "duplicate_source_id"))
    voucherify.get("/v1/publications").respond(200, json={"object": "list", "publications": []})
    with pytest.raises(VoucherifyRequestError, match="lists no publication"):
        await client.publish(campaign="welcome", customer=CUSTOMER, source_id="src-1")


async def test_empty_campaign_raises_campaign_exhausted(
    voucherify: respx.MockRouter, client: VoucherifyClient
) -> None:
    body = error(400, "no_voucher_suitable_for_publication", "Couldn't find any voucher")
    voucherify.post("/v1/publications").respond(400, json=body)
    with pytest.raises(CampaignExhaustedError) as caught:
        await client.publish(campaign="welcome", customer=CUSTOMER, source_id="src-1")
    assert (caught.value.http_status, caught.value.key) == (
        400,
        "no_voucher_suitable_for_publication",
    )


async def test_unknown_campaign_raises_campaign_not_found(
    voucherify: respx.MockRouter, client: VoucherifyClient
) -> None:
    body = error(404, "not_found", "Resource not found", resource_type="campaign")
    voucherify.post("/v1/publications").respond(404, json=body)
    with pytest.raises(CampaignNotFoundError) as caught:
        await client.publish(campaign="nope", customer=CUSTOMER, source_id="src-1")
    assert caught.value.http_status == 404


async def test_unknown_customer_id_in_publish_raises_customer_not_found(
    voucherify: respx.MockRouter, client: VoucherifyClient
) -> None:
    body = error(404, "not_found", "Resource not found", resource_type="customer")
    voucherify.post("/v1/publications").respond(404, json=body)
    with pytest.raises(CustomerNotFoundError):
        await client.publish(campaign="welcome", customer={"id": "cust_x"}, source_id="src-1")


async def test_other_refusal_carries_voucherifys_key_message_and_details(
    voucherify: respx.MockRouter, client: VoucherifyClient
) -> None:
    body = error(400, "invalid_publish_params", "Invalid params", details="customer is required")
    route = voucherify.post("/v1/publications").respond(400, json=body)
    with pytest.raises(VoucherifyRequestError) as caught:
        await client.publish(campaign="welcome", customer={}, source_id="src-1")
    assert type(caught.value) is VoucherifyRequestError
    assert caught.value.key == "invalid_publish_params"
    assert caught.value.message == "Invalid params: customer is required"
    assert caught.value.details == "customer is required"
    assert "400 invalid_publish_params" in str(caught.value)
    assert route.call_count == 1  # a refusal is not retried


async def test_get_customer_returns_it_and_quotes_the_id(
    voucherify: respx.MockRouter, client: VoucherifyClient
) -> None:
    route = voucherify.get("/v1/customers/user%2F1").respond(
        200, json={"id": "cust_1", "source_id": "user/1", "object": "customer"}
    )
    assert (await client.get_customer("user/1"))["id"] == "cust_1"
    assert route.called


async def test_unknown_customer_raises_customer_not_found(
    voucherify: respx.MockRouter, client: VoucherifyClient
) -> None:
    voucherify.get("/v1/customers/ghost").respond(404, json=error(404, "not_found"))
    with pytest.raises(CustomerNotFoundError) as caught:
        await client.get_customer("ghost")
    assert caught.value.key == "not_found"


async def test_token_never_appears_in_repr_errors_or_logs(
    voucherify: respx.MockRouter, client: VoucherifyClient, caplog: pytest.LogCaptureFixture
) -> None:
    # A proxy echoing the token back must not carry it into messages kept or logged.
    caplog.set_level(logging.DEBUG)
    echo = error(400, "bad", f"token {APP_TOKEN} refused", details=f"got {APP_TOKEN}")
    voucherify.post("/v1/publications").respond(400, json=echo)
    voucherify.get("/v1/customers/c1").mock(
        side_effect=httpx.ConnectError(f"cannot reach https://{APP_TOKEN}@api.voucherify.test")
    )
    with pytest.raises(VoucherifyRequestError) as refused:
        await client.publish(campaign="welcome", customer=CUSTOMER, source_id="src-1")
    with pytest.raises(VoucherifyUnavailableError) as unreachable:
        await client.get_customer("c1")
    for exc in (refused.value, unreachable.value):
        assert APP_TOKEN not in str(exc) and APP_TOKEN not in repr(exc)
        assert APP_TOKEN not in repr(vars(exc))
        assert exc.__cause__ is None and exc.__context__ is None
    assert "**********" in str(refused.value)
    assert APP_TOKEN not in repr(client) and APP_TOKEN not in str(client)
    assert APP_TOKEN not in repr(vars(client))
    assert caplog.records and all(APP_TOKEN not in r.getMessage() for r in caplog.records)


async def test_client_closes_its_pool_when_used_as_a_context_manager(
    voucherify: respx.MockRouter,
) -> None:
    voucherify.get("/v1/customers/c1").respond(200, json={"id": "c1"})
    async with VoucherifyClient(
        base_url=BASE_URL, app_id=APP_ID, app_token=SecretStr(APP_TOKEN)
    ) as client:
        assert (await client.get_customer("c1")) == {"id": "c1"}
    with pytest.raises(RuntimeError):
        await client.get_customer("c1")
