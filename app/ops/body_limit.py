"""The /api/v1 request body limit: API_MAX_BODY_BYTES, enforced while the body is read.

A declared Content-Length over the limit is refused before reading; a chunked body is counted
as it arrives and refused as soon as it passes the limit, so an oversized body is never held in
memory whole. The webhook path has its own limit (WEBHOOK_MAX_BODY_BYTES, `app.webhooks`).

The body read, a JSON one escaping half a UTF-16 pair (`"\ud800"` alone) is refused here too:
JSON parses it into a Python string that is not text (no UTF-8 holds it), which every later
step (Postgres, the answer) fails on with a 500.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from app.api.request_body import replaying
from app.errors import error_body
from app.webhooks.intake import BodyTooLargeError, add_chunk, check_declared_length

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

API_PREFIX = "/api/"
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
HALF_A_CHARACTER = (
    "a text value holds half a UTF-16 surrogate pair (such as \\ud800 alone), which is not a "
    "character and cannot be stored"
)


def is_json(content_type: str | None) -> bool:
    """application/json or application/...+json, as FastAPI decides whether to parse a body."""
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def holds_lone_surrogate(body: bytes) -> bool:
    """Whether this JSON body, parsed as FastAPI parses it, holds a string no UTF-8 can hold.
    False for a body that is not JSON: FastAPI answers that one."""
    if not _SURROGATE_ESCAPE.search(body):  # nearly every body: no parse
        return False
    try:
        json.dumps(json.loads(body), ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return True
    except (ValueError, RecursionError):
        return False
    return False


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
            message = f"{exc.message} (API_MAX_BODY_BYTES)"
            await _answer(send, 413, error_body(exc.code, message), close=True)
            return
        if disconnected:
            return
        if holds_lone_surrogate(body) and is_json(_header(scope, b"content-type")):
            await _answer(send, 422, error_body("invalid_text", HALF_A_CHARACTER))
            return
        await self.app(scope, replaying(body, receive), send)

    async def _read(self, scope: Scope, receive: Receive, limit: int) -> tuple[bytes, bool]:
        check_declared_length(_header(scope, b"content-length"), limit)
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


async def _answer(
    send: Send, status: int, error: dict[str, object], *, close: bool = False
) -> None:
    body = orjson.dumps(error)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:  # the rest of the body is not read: the client must not send more on this one
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    return next((v.decode("latin-1") for k, v in scope["headers"] if k == name), None)
