"""The request body door (app/api/request_body.py): size, time and the unauthenticated budget."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, MutableMapping
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api.request_body import Admission, RequestBodyDoor
from app.config import Settings
from app.main import create_app
from app.webhooks.models import WebhookEvent
from tests.conftest import WRITER, truncate_all
from tests.factories import sample, signed

Message = MutableMapping[str, Any]
BUDGET = 100


def refused(reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "voucher_relay_request_bodies_refused_total", {"reason": reason}
    )
    return value or 0.0


class Request:
    """One request through the door: its body fed chunk by chunk, its answer recorded."""

    def __init__(self, door: RequestBodyDoor, content_length: int | None = None) -> None:
        self.incoming: asyncio.Queue[Message] = asyncio.Queue()
        self.sent: list[Message] = []
        self.reads = 0
        headers = [] if content_length is None else [(b"content-length", b"%d" % content_length)]
        if content_length is None:
            headers.append((b"transfer-encoding", b"chunked"))
        scope = {"type": "http", "method": "POST", "path": "/in", "headers": headers}
        self.task = asyncio.create_task(door(scope, self._receive, self._send))

    async def _receive(self) -> Message:
        self.reads += 1
        return await self.incoming.get()

    async def _send(self, message: Message) -> None:
        self.sent.append(message)

    def chunk(self, size: int, *, more: bool = True) -> None:
        self.incoming.put_nowait({"type": "http.request", "body": b"x" * size, "more_body": more})

    @property
    def status(self) -> int | None:
        return next((m["status"] for m in self.sent if m["type"] == "http.response.start"), None)

    def header(self, name: bytes) -> bytes | None:
        start = next(m for m in self.sent if m["type"] == "http.response.start")
        return next((v for k, v in start["headers"] if k == name), None)


async def settle() -> None:
    """Let every task run until it waits for something the test sends."""
    for _ in range(20):
        await asyncio.sleep(0)


@pytest.fixture
def received() -> list[bytes]:
    return []


@pytest.fixture
def door(received: list[bytes]) -> RequestBodyDoor:
    async def application(scope: Any, receive: Any, send: Any) -> None:
        received.append((await receive())["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    admission = Admission(limit=1000, limit_setting="LIMIT", authenticated=False)
    return RequestBodyDoor(
        application, admit=lambda scope: admission, budget_limit=lambda: BUDGET, timeout=lambda: 5
    )


async def test_a_chunk_over_the_budget_refuses_the_oldest_holder_with_503_and_retry_after(
    door: RequestBodyDoor, received: list[bytes]
) -> None:
    before = refused("budget")
    oldest, newer = Request(door), Request(door)
    oldest.chunk(60)
    await settle()
    newer.chunk(60)
    await settle()

    assert oldest.task.done() and oldest.status == 503
    assert oldest.header(b"retry-after") == b"1" and oldest.header(b"connection") == b"close"
    assert refused("budget") == before + 1
    assert door.budget.held == 60  # the refused request's bytes are dropped at once
    newer.chunk(10, more=False)
    await newer.task
    assert newer.status == 200 and received == [b"x" * 70]
    assert door.budget.held == 0  # a whole body no longer counts


async def test_a_request_whose_own_bytes_pass_the_budget_is_refused_itself(
    door: RequestBodyDoor,
) -> None:
    request = Request(door)
    for _ in range(3):
        request.chunk(40)
    await request.task
    assert request.status == 503 and door.budget.held == 0


async def test_a_client_that_disconnects_gives_its_bytes_back(door: RequestBodyDoor) -> None:
    request = Request(door)
    request.chunk(90)
    await settle()
    assert door.budget.held == 90
    request.incoming.put_nowait({"type": "http.disconnect"})
    await request.task
    assert door.budget.held == 0 and request.sent == []  # nobody to answer


async def test_a_declared_length_over_the_limit_gets_413_before_any_byte_is_read(
    door: RequestBodyDoor,
) -> None:
    before = refused("too_large")
    request = Request(door, content_length=1001)
    await request.task
    assert request.status == 413 and request.reads == 0
    assert refused("too_large") == before + 1


async def test_a_body_without_a_length_is_refused_413_as_soon_as_it_passes_the_limit(
    received: list[bytes],
) -> None:
    admission = Admission(limit=100, limit_setting="LIMIT", authenticated=True)
    door = RequestBodyDoor(
        lambda *_: asyncio.sleep(0), admit=lambda scope: admission, budget_limit=lambda: 10,
        timeout=lambda: 5,
    )  # fmt: skip
    request = Request(door)
    for _ in range(3):
        request.chunk(60)  # authenticated: over the budget of 10, never counted against it
    await request.task
    assert request.status == 413 and request.reads == 2 and door.budget.held == 0


async def test_a_slow_body_gets_408_and_gives_its_bytes_back() -> None:
    admission = Admission(limit=1000, limit_setting="LIMIT", authenticated=False)
    door = RequestBodyDoor(
        lambda *_: asyncio.sleep(0), admit=lambda scope: admission, budget_limit=lambda: BUDGET,
        timeout=lambda: 0.05,
    )  # fmt: skip
    before = refused("timeout")
    request = Request(door)
    request.chunk(10)  # and nothing more
    await request.task
    assert request.status == 408 and door.budget.held == 0
    assert refused("timeout") == before + 1


# Through the application: the ops API's token, and a webhook while others fill the budget.


async def _waiting_body(
    first: bytes, release: asyncio.Event, read: list[bool] | None = None
) -> AsyncIterator[bytes]:
    if read is not None:
        read.append(True)
    yield first
    await release.wait()


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-token"}])
async def test_an_ops_body_without_a_valid_token_is_refused_before_it_is_read(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    read: list[bool] = []
    before = refused("unauthenticated")
    body = _waiting_body(b"{}", asyncio.Event(), read)
    answer = await client.post("/api/v1/distributions", content=body, headers=headers)
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"]["code"] == "unauthorized"
    assert read == [] and refused("unauthenticated") == before + 1


async def test_a_refusal_is_logged_once_in_a_while_without_a_secret_and_answered_with_an_id(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    token = "Bearer not-a-token-but-secret-looking"
    with caplog.at_level(logging.INFO, logger="app.api.request_body"):
        answers = [
            await client.post("/api/v1/replays", content=b"{}", headers={"Authorization": token})
            for _ in range(3)
        ]
    assert [a.status_code for a in answers] == [401] * 3
    assert all(a.headers.get("x-request-id") for a in answers)
    lines = [r.getMessage() for r in caplog.records if r.name == "app.api.request_body"]
    assert len(lines) == 1  # the next two wait for the next line, counted in it
    assert "unauthenticated, 401" in lines[0] and "/api/v1/replays" in lines[0]
    assert "secret-looking" not in caplog.text


async def test_an_ops_body_with_a_valid_token_is_read_whole_and_not_counted(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    budget = app.state.settings.unauthenticated_body_budget_bytes
    chunk = b"x" * (budget // 2 + 1)

    async def body() -> AsyncIterator[bytes]:
        yield chunk
        yield chunk  # over the budget together: counted, they would get 503

    headers = {**WRITER, "content-type": "application/json"}
    answer = await client.post("/api/v1/replays", content=body(), headers=headers)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_json"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"unauthenticated_body_budget_bytes": 64 * 1024})


async def test_a_valid_webhook_is_stored_while_slow_unsigned_bodies_fill_the_budget(
    settings: Settings, engine: AsyncEngine
) -> None:
    budget = settings.unauthenticated_body_budget_bytes
    app = create_app(settings, engine=engine)
    release = asyncio.Event()
    try:
        async with app.router.lifespan_context(app), _client(app) as client:
            url, junk = "/webhooks/voucherify", {"x-voucherify-signature": "00"}

            async def slow(size: int) -> httpx.Response:
                return await client.post(
                    url, content=_waiting_body(b" " * size, release), headers=junk
                )

            oldest = asyncio.create_task(slow(30_000))
            await _until(lambda: _held(app) == 30_000)
            newer = asyncio.create_task(slow(33_000))
            await _until(lambda: _held(app) == 63_000)

            raw, headers = signed(sample("customer.order.paid"))
            assert len(raw) > budget - 63_000  # its first chunk takes the budget over
            answer = await client.post(url, content=raw, headers=headers)
            assert answer.status_code == 202, answer.text

            refused_oldest = await oldest
            assert refused_oldest.status_code == 503 and "retry-after" in refused_oldest.headers
            assert not newer.done()
            release.set()
            assert (await newer).status_code == 401  # read whole, then its signature fails
            assert _held(app) == 0
        async with engine.connect() as connection:
            stored = await connection.scalar(select(func.count()).select_from(WebhookEvent))
        assert stored == 1
    finally:
        release.set()
        await truncate_all(engine)


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def _held(app: FastAPI) -> int:
    door = app.middleware_stack
    return door.budget.held if isinstance(door, RequestBodyDoor) else -1


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")
