"""Bodies of /api/v1 that are not JSON, or not sent as JSON, are refused with what to send."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import WRITER

SEND_JSON = "send a JSON body with Content-Type: application/json"


async def test_a_body_that_is_not_json_gets_400_saying_so(client: httpx.AsyncClient) -> None:
    headers = {**WRITER, "content-type": "application/json"}
    for url in ("/api/v1/distributions", "/api/v1/replays"):
        answer = await client.post(url, content=b"not json", headers=headers)
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error["code"] == "invalid_json"
        assert "not valid JSON" in error["message"] and SEND_JSON in error["message"]


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
