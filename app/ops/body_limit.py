"""The /api/v1 request body limit: API_MAX_BODY_BYTES, enforced while the body is read.

A declared Content-Length over the limit is refused before reading; a chunked body is counted
as it arrives and refused as soon as it passes the limit, so an oversized body is never held in
memory whole. The webhook path has its own limit (WEBHOOK_MAX_BODY_BYTES, `app.webhooks`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from app.errors import error_body
from app.webhooks.intake import BodyTooLargeError, add_chunk, check_declared_length

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

API_PREFIX = "/api/"


class ApiBodyLimit:
    """ASGI middleware: reads an /api/ request's body up to `limit` bytes, then hands it on;
    past the limit it answers 413 itself (the application never sees the request)."""

    def __init__(self, app: ASGIApp, *, limit: Callable[[], int]) -> None:
        self.app = app
        self.limit = limit  # read per request: the settings are the app's

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        try:
            body, disconnected = await self._read(scope, receive, self.limit())
        except BodyTooLargeError as exc:
            await _answer_413(send, exc.message)
            return
        if disconnected:
            return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()  # after the body: the disconnect, when it comes
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _read(self, scope: Scope, receive: Receive, limit: int) -> tuple[bytes, bool]:
        declared = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value.decode("latin-1")
        check_declared_length(declared, limit)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"", True
            chunk = message.get("body", b"")
            size = add_chunk(size, chunk, limit)
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks), False


async def _answer_413(send: Send, message: str) -> None:
    body = orjson.dumps(error_body(BodyTooLargeError.code, f"{message} (API_MAX_BODY_BYTES)"))
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                # The rest of the body is not read: the client must not send more on this one.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
