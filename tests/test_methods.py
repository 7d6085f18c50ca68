"""A method a path does not take gets 405 with an Allow header naming every method the path
takes (RFC 9110), as the OpenAPI document lists them; never another route's answer."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import WRITER

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _documented(app: FastAPI) -> dict[str, set[str]]:
    """Every /api/v1 path with sample ids filled in, and the methods the document lists."""
    paths = {}
    for path, operations in app.openapi()["paths"].items():
        if path.startswith("/api/v1/"):
            sample = re.sub(r"\{(distribution|replay)_id\}", str(uuid.uuid4()), path)
            paths[re.sub(r"\{\w+_id\}", "1", sample)] = {m.upper() for m in operations}
    return paths


async def test_every_undeclared_method_gets_405_allowing_exactly_the_documented_ones(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    for path, documented in _documented(app).items():
        for method in sorted(set(METHODS) - documented):
            answer = await client.request(method, path, headers=WRITER)
            assert answer.status_code == 405, (method, path, answer.text)
            allowed = {m.strip() for m in answer.headers["allow"].split(",")}
            assert allowed == documented, (method, path, allowed)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_replays_plan_takes_only_post_and_is_no_replay_id(
    client: httpx.AsyncClient, method: str
) -> None:
    answer = await client.request(method, "/api/v1/replays/plan", headers=WRITER)
    assert answer.status_code == 405 and answer.headers["allow"] == "POST", answer.text
    assert answer.json()["error"]["code"] == "method_not_allowed"
