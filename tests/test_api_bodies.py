"""Bodies of /api/v1 that are not JSON, or not sent as JSON, are refused with what to send."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from app.config import Settings
from tests.conftest import WRITER
from tests.factories import distribution_body, sample

SEND_JSON = "send a JSON body with Content-Type: application/json"


async def test_a_body_that_is_not_json_gets_400_saying_so(client: httpx.AsyncClient) -> None:
    headers = {**WRITER, "content-type": "application/json"}
    for url in ("/api/v1/distributions", "/api/v1/replays"):
        answer = await client.post(url, content=b"not json", headers=headers)
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error["code"] == "invalid_json"
        assert "not valid JSON" in error["message"] and SEND_JSON in error["message"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('{"filter": {"braze_user_key": "Müller"}}'.encode("latin-1"), "byte 0xfc at position 32"),
        (b"\xff\xfe", "not valid JSON"),
        (b'{"filter": {"status": "dead"}}\xff\xfe', "byte 0xff at position 30"),
    ],
)
async def test_a_body_that_is_not_utf8_gets_400_invalid_json_saying_what_to_send(
    client: httpx.AsyncClient, body: bytes, reason: str
) -> None:
    headers = {**WRITER, "content-type": "application/json"}
    for url in ("/api/v1/replays", "/api/v1/distributions"):
        answer = await client.post(url, content=body, headers=headers)
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error["code"] == "invalid_json", error
        assert error["message"].startswith("the body is not valid JSON ("), error
        assert reason in error["message"] and SEND_JSON in error["message"], error


async def test_a_body_nested_too_deeply_gets_400_invalid_json_saying_so(
    client: httpx.AsyncClient,
) -> None:
    headers = {**WRITER, "content-type": "application/json"}
    body = b"[" * 20_000 + b"]" * 20_000
    answer = await client.post("/api/v1/replays", content=body, headers=headers)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_json" and "nested too deeply" in error["message"], error


@pytest.mark.parametrize("content_type", [None, "application/x-www-form-urlencoded", "text/plain"])
async def test_a_body_not_sent_as_json_gets_415_saying_what_to_send(
    client: httpx.AsyncClient, content_type: str | None
) -> None:
    headers = dict(WRITER)
    if content_type is not None:
        headers["content-type"] = content_type
    answer = await client.post("/api/v1/replays", content=b'{"filter":{}}', headers=headers)
    assert answer.status_code == 415, answer.text
    error = answer.json()["error"]
    assert error["code"] == "unsupported_media_type"
    assert SEND_JSON in error["message"]
    assert (content_type or "no Content-Type") in error["message"]


async def test_json_with_a_charset_or_a_json_suffix_is_json(client: httpx.AsyncClient) -> None:
    for content_type in ("application/json; charset=utf-8", "application/merge-patch+json"):
        headers = {**WRITER, "content-type": content_type}
        answer = await client.post("/api/v1/replays", content=b'{"filter":{}}', headers=headers)
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["code"] == "validation_error"


LIMIT = 64 * 1024


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"api_max_body_bytes": LIMIT})


def _preview_url() -> str:
    return f"/api/v1/distributions/{uuid.uuid4()}/preview"


def _too_large(answer: httpx.Response) -> None:
    assert answer.status_code == 413, answer.text
    error = answer.json()["error"]
    assert error["code"] == "body_too_large" and "API_MAX_BODY_BYTES" in error["message"]


async def test_a_declared_length_over_the_limit_is_refused_before_reading(
    client: httpx.AsyncClient,
) -> None:
    read = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal read
        read += 1
        yield b"{}"

    headers = {**WRITER, "content-type": "application/json", "content-length": str(LIMIT + 1)}
    _too_large(await client.post(_preview_url(), content=body(), headers=headers))
    assert read == 0


async def test_a_chunked_body_is_refused_once_it_passes_the_limit(
    client: httpx.AsyncClient,
) -> None:
    sent = 0

    async def fifty_megabytes() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"data": "'
        for _ in range(50 * 1024):
            sent += 1
            yield b"x" * 1024
        yield b'"}'

    headers = {**WRITER, "content-type": "application/json"}
    _too_large(await client.post(_preview_url(), content=fifty_megabytes(), headers=headers))
    assert sent <= LIMIT // 1024 + 1  # read up to the limit, not the 50 MB


async def test_a_body_under_the_limit_reaches_the_endpoint(client: httpx.AsyncClient) -> None:
    async def chunked() -> AsyncIterator[bytes]:
        yield b'{"filter": '
        yield b'{"status": "dead", "braze_user_key": "' + b"k" * (LIMIT // 2) + b'"}}'

    headers = {**WRITER, "content-type": "application/json"}
    answer = await client.post("/api/v1/replays/plan", content=chunked(), headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["count"] == 0


@pytest.mark.parametrize("escape", ["\\ud800", "\\uDC80", "\\ud83d x", "\\udc80\\ud83d"])
async def test_a_body_holding_half_a_utf16_pair_gets_422_invalid_text_not_a_500(
    client: httpx.AsyncClient, escape: str
) -> None:
    created = await client.post("/api/v1/distributions", json=distribution_body(), headers=WRITER)
    preview = f"/api/v1/distributions/{created.json()['id']}/preview"
    event = json.dumps(sample("customer.segment.entered")).replace("Mia", f"Mia{escape}")
    headers = {**WRITER, "content-type": "application/json"}
    for url, text in (
        ("/api/v1/replays/plan", '{"filter": {"braze_user_key": "external_id:' + escape + '"}}'),
        ("/api/v1/distributions", json.dumps(distribution_body(name="other")).replace(
            "welcome_code_expires_at", f"expires{escape}")),
        (preview, event),
    ):  # fmt: skip
        answer = await client.post(url, content=text.encode(), headers=headers)
        assert answer.status_code == 422, (url, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "invalid_text" and "surrogate" in error["message"], error


async def test_a_body_holding_a_whole_utf16_pair_is_text(client: httpx.AsyncClient) -> None:
    body = json.dumps(distribution_body(name="party \U0001f389"))  # ASCII: \ud83c\udf89
    assert "\\ud83c\\udf89" in body
    headers = {**WRITER, "content-type": "application/json"}
    answer = await client.post("/api/v1/distributions", content=body.encode(), headers=headers)
    assert answer.status_code == 201 and answer.json()["name"] == "party \U0001f389", answer.text
