from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import READER, WRITER
from tests.factories import distribution_body, sample

BASE = "/api/v1/distributions"


async def create(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    response = await client.post(BASE, json=distribution_body(**overrides), headers=WRITER)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_create_returns_the_resource_with_id_and_version(client: httpx.AsyncClient) -> None:
    created = await create(client)
    assert created["version"] == 1
    assert created["name"] == "welcome-code"
    assert created["mapping"][1]["format"] == "iso_datetime"
    assert created["created_at"] and created["id"]
    fetched = await client.get(f"{BASE}/{created['id']}", headers=READER)
    assert fetched.json() == created


async def test_duplicate_name_is_a_conflict(client: httpx.AsyncClient) -> None:
    await create(client)
    response = await client.post(BASE, json=distribution_body(), headers=WRITER)
    assert response.status_code == 409
    assert "already exists" in response.json()["error"]["message"]


async def test_invalid_distribution_gets_422_naming_the_problem(client: httpx.AsyncClient) -> None:
    body = distribution_body(mapping=[{"source": "voucher.campaign", "attribute": "campaign"}])
    response = await client.post(BASE, json=body, headers=WRITER)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert "the voucher code must be mapped" in error["details"][0]["message"]


async def test_list_filters_by_status_and_trigger(client: httpx.AsyncClient) -> None:
    welcome = await create(client)
    orders = await create(client, name="order-paid", triggers=["customer.order.paid"], filters={})
    await client.post(f"{BASE}/{orders['id']}/pause", headers=WRITER)

    async def names(**params: str) -> list[str]:
        response = await client.get(BASE, params=params, headers=READER)
        assert response.status_code == 200
        return [item["name"] for item in response.json()["items"]]

    assert await names() == ["order-paid", "welcome-code"]
    assert await names(status="active") == [welcome["name"]]
    assert await names(status="paused") == ["order-paid"]
    assert await names(trigger="customer.order.paid") == ["order-paid"]


async def test_listing_by_an_unknown_trigger_gets_422_naming_the_known_ones(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.get(BASE, params={"trigger": "customer.segment.joined"}, headers=READER)
    assert answer.status_code == 422, answer.text
    message = answer.json()["error"]["details"][0]["message"]
    assert (
        "unknown trigger 'customer.segment.joined'" in message
        and "customer.segment.entered" in message
    )


@pytest.mark.parametrize("loose", [0, 1, "yes", "true"])
async def test_update_existing_only_takes_only_true_or_false(
    client: httpx.AsyncClient, loose: object
) -> None:
    body = distribution_body(update_existing_only=loose)
    answer = await client.post(BASE, json=body, headers=WRITER)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["details"][0]["loc"] == ["body", "update_existing_only"]
    created = await create(client)
    patch = {"update_existing_only": loose}
    answer = await client.patch(f"{BASE}/{created['id']}", json=patch, headers=WRITER)
    assert answer.status_code == 422, answer.text


async def test_put_replaces_and_increments_version(client: httpx.AsyncClient) -> None:
    created = await create(client)
    body = distribution_body(mapping=[{"source": "voucher.code", "attribute": "welcome_voucher"}])
    response = await client.put(f"{BASE}/{created['id']}", json=body, headers=WRITER)
    assert response.status_code == 200
    assert response.json()["version"] == 2
    assert response.json()["mapping"] == [
        {"source": "voucher.code", "attribute": "welcome_voucher", "format": "raw"}
    ]


async def test_patch_changes_some_fields_and_revalidates(client: httpx.AsyncClient) -> None:
    created = await create(client)
    url = f"{BASE}/{created['id']}"
    response = await client.patch(url, json={"consent": None}, headers=WRITER)
    assert response.status_code == 200
    assert response.json()["consent"] is None and response.json()["version"] == 2

    invalid = await client.patch(
        url, json={"mapping": [{"source": "voucher.campaign", "attribute": "c"}]}, headers=WRITER
    )
    assert invalid.status_code == 422
    assert "voucher code must be mapped" in invalid.json()["error"]["details"][0]["message"]


@pytest.mark.parametrize("field", ["name", "triggers", "filters", "identity", "mapping", "status"])
async def test_a_patch_nulling_a_field_it_can_only_replace_gets_422_as_documented(
    app: FastAPI, client: httpx.AsyncClient, field: str
) -> None:
    created = await create(client)
    answer = await client.patch(f"{BASE}/{created['id']}", json={field: None}, headers=WRITER)
    assert answer.status_code == 422, answer.text
    detail = answer.json()["error"]["details"][0]
    assert detail["loc"] == ["body", field] and "cannot be null" in detail["message"], detail
    documented = app.openapi()["components"]["schemas"]["DistributionPatch"]["properties"]
    assert {"type": "null"} not in documented[field].get("anyOf", []), documented[field]
    assert {"type": "null"} in documented["consent"]["anyOf"]


async def test_saving_an_unchanged_distribution_keeps_its_version(
    client: httpx.AsyncClient,
) -> None:
    created = await create(client)
    response = await client.put(f"{BASE}/{created['id']}", json=distribution_body(), headers=WRITER)
    assert response.json()["version"] == 1


async def test_pause_and_resume(client: httpx.AsyncClient) -> None:
    created = await create(client)
    paused = await client.post(f"{BASE}/{created['id']}/pause", headers=WRITER)
    assert paused.json()["status"] == "paused" and paused.json()["version"] == 2
    resumed = await client.post(f"{BASE}/{created['id']}/resume", headers=WRITER)
    assert resumed.json()["status"] == "active" and resumed.json()["version"] == 3


async def test_delete_is_soft_and_frees_the_name(client: httpx.AsyncClient) -> None:
    created = await create(client)
    url = f"{BASE}/{created['id']}"
    deleted = await client.delete(url, headers=WRITER)
    assert deleted.status_code == 200 and deleted.json()["deleted_at"]

    still_readable = await client.get(url, headers=READER)
    assert still_readable.status_code == 200 and still_readable.json()["deleted_at"]
    listed = await client.get(BASE, headers=READER)
    assert listed.json()["items"] == []
    with_deleted = await client.get(BASE, params={"include_deleted": "true"}, headers=READER)
    assert len(with_deleted.json()["items"]) == 1

    assert (await client.post(f"{url}/pause", headers=WRITER)).status_code == 409
    await create(client)  # the name is free again


async def test_a_body_that_is_not_json_gets_the_one_error_shape(client: httpx.AsyncClient) -> None:
    headers = {**WRITER, "content-type": "application/json"}
    answer = await client.post("/api/v1/distributions", content=b'{"\x80"}', headers=headers)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_json"
    missing = await client.get("/api/v1/no-such-thing", headers=WRITER)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


async def test_unknown_distribution_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{BASE}/6f1c1b8e-0000-4000-8000-000000000000", headers=READER)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_requests_without_a_token_get_401(client: httpx.AsyncClient) -> None:
    response = await client.get(BASE)
    assert response.status_code == 401
    assert "bearer token" in response.json()["error"]["message"]
    wrong = await client.get(BASE, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("post", ""),
        ("put", "/x"),
        ("patch", "/x"),
        ("delete", "/x"),
        ("post", "/x/pause"),
        ("post", "/x/resume"),
    ],
)
async def test_read_only_tokens_cannot_change_anything(
    client: httpx.AsyncClient, method: str, suffix: str
) -> None:
    created = await create(client)
    url = BASE + suffix.replace("x", created["id"])
    kwargs: dict[str, Any] = {"headers": READER}
    if method in ("post", "put", "patch") and suffix in ("", "/x"):
        kwargs["json"] = distribution_body(name="other")
    response = await client.request(method.upper(), url, **kwargs)
    assert response.status_code == 403
    assert "read-only" in response.json()["error"]["message"]


async def test_preview_returns_the_exact_braze_object(client: httpx.AsyncClient) -> None:
    created = await create(client)
    response = await client.post(
        f"{BASE}/{created['id']}/preview", json=sample("customer.segment.entered"), headers=READER
    )
    assert response.status_code == 200
    body = response.json()
    assert body["outcome"] == "send"
    assert body["object"] == {
        "external_id": "braze-usr-10042",
        "welcome_code": "WELCOME-7QX2KD",
        "welcome_code_expires_at": "2026-04-09T21:59:59.000Z",
    }
    assert body["request_body"] == {"attributes": [body["object"]]}


async def test_preview_explains_a_skip(client: httpx.AsyncClient) -> None:
    created = await create(client)
    event = sample("customer.segment.entered")
    event["data"]["customer"]["metadata"]["braze_opt_in"] = False
    response = await client.post(f"{BASE}/{created['id']}/preview", json=event, headers=READER)
    assert response.json()["outcome"] == "skip"
    assert response.json()["reason"] == "no_consent"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({}, "event.id and event.type are required"),
        ({"object": "event", "type": "customer.segment.entered", "data": {}}, "legacy v2018-08-01"),
        ({"event": {"id": "evt_1", "type": "customer.segment.entered"}}, "source.id is required"),
    ],
)
async def test_preview_refuses_what_intake_refuses_with_the_same_400(
    client: httpx.AsyncClient, body: dict[str, Any], says: str
) -> None:
    created = await create(client)
    response = await client.post(f"{BASE}/{created['id']}/preview", json=body, headers=READER)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_webhook" and says in error["message"]
    assert "object at 0x" not in response.text


async def test_preview_stores_nothing(client: httpx.AsyncClient) -> None:
    created = await create(client)
    await client.post(
        f"{BASE}/{created['id']}/preview", json=sample("customer.segment.entered"), headers=READER
    )
    fetched = await client.get(f"{BASE}/{created['id']}", headers=READER)
    assert fetched.json()["version"] == 1


async def test_liquid_gives_snippets_for_each_attribute(client: httpx.AsyncClient) -> None:
    created = await create(client)
    response = await client.get(f"{BASE}/{created['id']}/liquid", headers=READER)
    snippets = response.json()["snippets"]
    assert [s["attribute"] for s in snippets] == ["welcome_code", "welcome_code_expires_at"]
    code = snippets[0]
    assert code["tag"] == "{{custom_attribute.${welcome_code}}}"
    assert code["with_default"] == "{{custom_attribute.${welcome_code} | default: 'FALLBACK'}}"
    assert code["abort_when_blank"] == (
        "{% if {{custom_attribute.${welcome_code}}} == blank %}"
        "{% abort_message('no welcome_code') %}{% endif %}"
    )


async def test_fields_catalogue_lists_mappable_fields_with_examples(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/v1/fields", headers=READER)
    fields = {f["source"]: f for f in response.json()["fields"]}
    for source in (
        "voucher.code",
        "voucher.expiration_date",
        "voucher.start_date",
        "campaign.name",
        "campaign.id",
        "voucher.type",
        "voucher.gift.amount",
        "voucher.gift.balance",
        "voucher.loyalty_card.points",
        "voucher.loyalty_card.balance",
        "voucher.assets.qr.url",
        "voucher.assets.barcode.url",
        "publication.id",
        "customer.id",
        "customer.source_id",
        "order.id",
        "order.status",
        "order.amount",
        "promotion_tier.name",
        "promotion_tier.id",
        "segment.name",
        "webhook.event.type",
        "webhook.project_id",
    ):
        assert source in fields, source
        assert fields[source]["description"] and fields[source]["example"] is not None
