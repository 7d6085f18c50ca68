"""The Voucherify emulator's API in process, through httpx.ASGITransport."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.sandbox.voucherify.emulator import create_voucherify_emulator, voucherify_emulator_state
from app.sandbox.voucherify.state import EmulatorState
from tests.voucherify.fakes import APP_ID, APP_TOKEN, FakeClock

EXPIRES = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)


@pytest.fixture
def app() -> FastAPI:
    return create_voucherify_emulator(app_id=APP_ID, app_token=APP_TOKEN, clock=FakeClock())


@pytest.fixture
def state(app: FastAPI) -> EmulatorState:
    state = voucherify_emulator_state(app)
    state.add_campaign(
        name="welcome", id="camp_w", count=2, pattern="W-###", expiration_date=EXPIRES
    )
    return state


async def publish(
    http: httpx.AsyncClient,
    source_id: str | None,
    *,
    campaign: Any = None,
    customer: dict[str, str] | None = None,
) -> httpx.Response:
    """POST a publication under `source_id` (None: without one)."""
    body: dict[str, Any] = {
        "campaign": campaign if campaign is not None else {"name": "welcome"},
        "customer": customer or {"source_id": "u1"},
    }
    if source_id is not None:
        body["source_id"] = source_id
    return await http.post("/v1/publications", json=body)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-App-Id": APP_ID, "X-App-Token": "wrong"},
        {"X-App-Id": "other", "X-App-Token": APP_TOKEN},
    ],
    ids=["none", "wrong-token", "wrong-app-id"],
)
async def test_requests_without_the_right_app_id_and_token_answer_401(
    app: FastAPI, state: EmulatorState, headers: dict[str, str]
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://v.test") as anonymous:
        response = await anonymous.post(
            "/v1/publications",
            json={"campaign": {"name": "welcome"}, "customer": {"source_id": "u1"}},
            headers=headers,
        )
    assert response.status_code == 401
    assert response.json()["key"] == "unauthorized"
    assert state.publications == []


async def test_publication_hands_out_the_next_code_as_a_simple_voucher(
    http: httpx.AsyncClient, state: EmulatorState
) -> None:
    first = await publish(http, "s1", customer={"source_id": "u1", "email": "u1@example.com"})
    second = await publish(http, "s2", customer={"source_id": "u2"})
    assert first.status_code == second.status_code == 200
    body = first.json()
    voucher = body["voucher"]
    customer = state.customers.find("u1")
    assert customer is not None and customer.email == "u1@example.com"
    assert {
        k: body[k] for k in ("object", "source_id", "result", "customer_id", "tracking_id")
    } == {
        "object": "publication",
        "source_id": "s1",
        "result": "SUCCESS",
        "customer_id": customer.id,
        "tracking_id": "u1",
    }
    assert body["id"].startswith("pub_") and body["vouchers_id"] == [voucher["id"]]
    assert {k: voucher[k] for k in ("code", "campaign", "campaign_id", "type", "object")} == {
        "code": "W-001",
        "campaign": "welcome",
        "campaign_id": "camp_w",
        "type": "DISCOUNT_VOUCHER",
        "object": "voucher",
    }
    assert voucher["expiration_date"] == "2026-12-31T23:59:59.000Z"
    assert voucher["start_date"] is None and voucher["holder_id"] == customer.id
    assert voucher["assets"]["qr"]["url"].startswith("https://")
    assert voucher["assets"]["barcode"]["url"].startswith("https://")
    assert second.json()["voucher"]["code"] == "W-002"


@pytest.mark.parametrize("campaign", ["welcome", "camp_w", {"name": "camp_w"}])
async def test_campaign_is_found_by_name_or_id_as_object_or_plain_string(
    http: httpx.AsyncClient, state: EmulatorState, campaign: Any
) -> None:
    response = await publish(http, "s1", campaign=campaign)
    assert response.json()["voucher"]["code"] == "W-001"


async def test_repeated_source_id_answers_duplicate_source_id_and_publishes_nothing(
    http: httpx.AsyncClient, state: EmulatorState
) -> None:
    await publish(http, "s1")
    again = await publish(http, "s1")
    assert again.status_code == 400
    assert again.json()["key"] == "duplicate_source_id"
    assert state.campaigns["camp_w"].remaining == 1


async def test_return_original_mode_answers_the_first_publication_again(
    http: httpx.AsyncClient, state: EmulatorState
) -> None:
    state.duplicate_source_id = "return_original"
    first = (await publish(http, "s1")).json()
    again = await publish(http, "s1")
    assert again.status_code == 200 and again.json() == first
    assert state.campaigns["camp_w"].remaining == 1


async def test_publications_without_source_id_each_get_a_new_code(
    http: httpx.AsyncClient, state: EmulatorState
) -> None:
    codes = [(await publish(http, None)).json()["voucher"]["code"] for _ in range(2)]
    assert codes == ["W-001", "W-002"]


async def test_empty_pool_answers_no_voucher_suitable_for_publication(
    http: httpx.AsyncClient, state: EmulatorState
) -> None:
    statuses = [(await publish(http, f"s{n}")).status_code for n in range(2)]
    exhausted = await publish(http, "s3")
    assert statuses == [200, 200]
    assert exhausted.status_code == 400
    assert exhausted.json()["key"] == "no_voucher_suitable_for_publication"


async def test_unknown_campaign_answers_404_naming_the_campaign(
    http: httpx.AsyncClient, state: EmulatorState
) -> None:
    response = await publish(http, "s1", campaign={"name": "nope"})
    assert response.status_code == 404
    assert response.json()["key"] == "not_found"
    assert response.json()["resource_type"] == "campaign"


async def test_unknown_customer_id_answers_404_and_a_new_source_id_creates_the_customer(
    http: httpx.AsyncClient, state: EmulatorState
) -> None:
    unknown = await publish(http, "s1", customer={"id": "cust_nope"})
    created = await publish(http, "s2", customer={"source_id": "new-user", "name": "Ana"})
    assert unknown.status_code == 404 and unknown.json()["resource_type"] == "customer"
    assert created.status_code == 200
    customer = (await http.get("/v1/customers/new-user")).json()
    assert (customer["name"], customer["object"]) == ("Ana", "customer")


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ({"customer": {"source_id": "u1"}}, "missing_vouchers"),
        ({"campaign": {"name": "welcome"}}, "invalid_publish_params"),
        ({"campaign": {"name": "welcome"}, "customer": {"name": "x"}}, "invalid_publish_params"),
    ],
)
async def test_publication_without_campaign_or_customer_answers_400(
    http: httpx.AsyncClient, state: EmulatorState, body: dict[str, Any], key: str
) -> None:
    response = await http.post("/v1/publications", json=body)
    assert (response.status_code, response.json()["key"]) == (400, key)


@pytest.mark.parametrize("listing", ["voucher", "vouchers_id"])
async def test_publications_are_listed_by_source_id_with_the_voucher_or_only_its_id(
    http: httpx.AsyncClient, state: EmulatorState, listing: Any
) -> None:
    state.publication_listing = listing
    published = (await publish(http, "s1")).json()
    await publish(http, "s2")
    body = (await http.get("/v1/publications", params={"source_id": "s1"})).json()
    assert (body["object"], body["total"]) == ("list", 1)
    [item] = body["publications"]
    assert item["id"] == published["id"] and item["vouchers_id"] == published["vouchers_id"]
    assert ("voucher" in item) is (listing == "voucher")


async def test_voucher_is_found_by_code_or_id(
    http: httpx.AsyncClient, state: EmulatorState
) -> None:
    voucher = (await publish(http, "s1")).json()["voucher"]
    by_code = await http.get("/v1/vouchers/W-001")
    by_id = await http.get(f"/v1/vouchers/{voucher['id']}")
    missing = await http.get("/v1/vouchers/NOPE")
    assert by_code.json() == by_id.json()
    assert by_code.json()["holder_id"] == voucher["holder_id"]
    assert by_code.json()["publish"]["count"] == 1
    assert missing.status_code == 404 and missing.json()["resource_type"] == "voucher"


async def test_customer_is_found_by_id_or_source_id_and_404_otherwise(
    http: httpx.AsyncClient, state: EmulatorState
) -> None:
    customer = state.add_customer(source_id="u9", email="u9@example.com")
    by_id = (await http.get(f"/v1/customers/{customer.id}")).json()
    by_source_id = (await http.get("/v1/customers/u9")).json()
    missing = await http.get("/v1/customers/ghost")
    assert by_id == by_source_id
    assert (by_id["source_id"], by_id["email"], by_id["object"]) == (
        "u9",
        "u9@example.com",
        "customer",
    )
    assert missing.status_code == 404 and missing.json()["resource_type"] == "customer"
