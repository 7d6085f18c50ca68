"""The OpenAPI documents itself: a description on every field, enums where the code has a
closed set, an example for every body and answer (each valid against its schema), the errors
each operation really answers, the webhook's header and body; and /docs works offline."""

from __future__ import annotations

import re
from typing import Any

import httpx
import jsonschema_rs
import pytest

from app.config import Settings
from app.distributions.triggers import KNOWN_TRIGGERS
from app.main import create_app
from app.openapi.errors import CONFLICTS

DOCUMENT: dict[str, Any] = create_app(Settings(_env_file=None)).openapi()
SCHEMAS: dict[str, Any] = DOCUMENT["components"]["schemas"]
OPERATIONS = [
    (method.upper(), path, operation)
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
]
IDS = [f"{method} {path}" for method, path, _ in OPERATIONS]


def _errors(method: str, path: str) -> list[int]:
    responses = DOCUMENT["paths"][path][method.lower()]["responses"]
    return sorted(int(status) for status in responses if status[0] in "45")


def _validator(schema: dict[str, Any]) -> jsonschema_rs.Draft202012Validator:
    # The components travel along so that "#/components/schemas/..." resolves.
    return jsonschema_rs.Draft202012Validator({"components": DOCUMENT["components"], **schema})


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_field_has_a_description(name: str) -> None:
    missing = [f for f, spec in SCHEMAS[name].get("properties", {}).items()
               if not spec.get("description")]  # fmt: skip
    assert missing == [], f"{name}: {missing}"


@pytest.mark.parametrize(("method", "path", "operation"), OPERATIONS, ids=IDS)
def test_every_operation_has_an_example_for_its_body_and_each_answer(
    method: str, path: str, operation: dict[str, Any]
) -> None:
    assert operation.get("summary") or operation.get("description"), "say what it does"
    for media in operation.get("requestBody", {}).get("content", {}).values():
        assert "example" in media, "request body"
        _validator(media["schema"]).validate(media["example"])
    for status, response in operation["responses"].items():
        assert response.get("description"), status
        for media in response.get("content", {}).values():
            assert "example" in media, f"answer {status}"
            if "schema" in media:
                _validator(media["schema"]).validate(media["example"])


@pytest.mark.parametrize("name", sorted(n for n in SCHEMAS if "examples" in SCHEMAS[n]))
def test_schema_examples_are_valid(name: str) -> None:
    for example in SCHEMAS[name]["examples"]:
        _validator({"$ref": f"#/components/schemas/{name}"}).validate(example)


def test_triggers_formats_and_statuses_are_enums() -> None:
    triggers = SCHEMAS["DistributionConfig"]["properties"]["triggers"]["items"]["enum"]
    assert set(triggers) == KNOWN_TRIGGERS
    assert "iso_datetime" in SCHEMAS["MappingItem"]["properties"]["format"]["enum"]
    delivery = SCHEMAS["DeliverySummary"]["properties"]
    assert delivery["status"]["enum"] == [
        "pending", "in_flight", "delivered", "skipped", "failed", "dead",
    ]  # fmt: skip
    assert delivery["trigger"]["enum"] == ["webhook", "run", "manual", "bulk"]
    assert "canceled" in SCHEMAS["RunSummary"]["properties"]["status"]["enum"]
    assert "queued" in SCHEMAS["ReplayRead"]["properties"]["status"]["enum"]
    assert SCHEMAS["EventSummary"]["properties"]["outcome"]["enum"] == [
        "matched", "unmatched", "ignored", "failed",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "errors"),
    [
        ("GET", "/api/v1/fields", [401, 503]),
        ("GET", "/api/v1/runs", [401, 422, 503]),
        ("GET", "/api/v1/events/{event_id}", [401, 404, 422, 503]),
        ("POST", "/api/v1/distributions", [400, 401, 403, 409, 413, 415, 422, 503]),
        ("POST", "/api/v1/distributions/{distribution_id}/preview",
         [400, 401, 404, 413, 415, 422, 503]),
        ("POST", "/api/v1/runs/{run_id}/cancel", [401, 403, 404, 409, 422, 503]),
        ("POST", "/api/v1/replays/plan", [400, 401, 403, 413, 415, 422, 503]),
        ("POST", "/webhooks/voucherify", [400, 401, 413, 503]),
        ("GET", "/readyz", [503]),
        ("GET", "/healthz", []),
    ],
)  # fmt: skip
def test_each_operation_documents_only_the_errors_it_can_answer(
    method: str, path: str, errors: list[int]
) -> None:
    assert _errors(method, path) == errors


@pytest.mark.parametrize(("method", "path"), sorted(CONFLICTS))
def test_each_operation_that_refuses_a_state_documents_its_409(method: str, path: str) -> None:
    assert 409 in _errors(method, path), (method, path)


def test_no_two_kinds_of_operation_share_one_list_of_errors_by_accident() -> None:
    lists = {tuple(_errors(m, p)) for m, p, _ in OPERATIONS if p.startswith("/api/v1/")}
    assert len(lists) >= 6, lists


def test_the_webhook_documents_its_signature_its_body_and_its_answers() -> None:
    operation = DOCUMENT["paths"]["/webhooks/voucherify"]["post"]
    [header] = operation["parameters"]
    assert (header["name"], header["in"], header["required"]) == (
        "x-voucherify-signature", "header", True,
    )  # fmt: skip
    body = operation["requestBody"]["content"]["application/json"]
    assert body["example"]["event"]["type"] == "customer.segment.entered"
    assert {"200", "202"} <= set(operation["responses"])
    assert "Retry-After" in operation["responses"]["503"]["headers"]
    assert "security" not in operation, "the signature is its authentication"


def test_the_ops_api_asks_for_a_bearer_token() -> None:
    operation = DOCUMENT["paths"]["/api/v1/distributions"]["get"]
    [scheme] = operation["security"][0]
    assert DOCUMENT["components"]["securitySchemes"][scheme]["scheme"] == "bearer"


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_docs_pages_work_offline(client: httpx.AsyncClient, page: str) -> None:
    html = (await client.get(page)).text
    assert "/openapi.json" in html
    assert re.findall(r"https?://[^\s\"'<>]+", html) == [], "no external host"
    assets = re.findall(r"(?:src|href)=[\"']?(/docs-assets/[^\"'\s>]+)", html)
    assert assets, html
    for asset in assets:
        assert (await client.get(asset)).status_code == 200, asset
