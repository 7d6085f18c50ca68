"""POST /webhooks/voucherify, served by a lean ASGI path in front of FastAPI.

The FastAPI route below documents the endpoint (OpenAPI) and serves it wherever the fast path
is not installed; both run `intake.receive_webhook`. The fast path skips FastAPI's routing and
dependency machinery, which cost more CPU than storing the webhook does.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response, status

from app.distributions.envelope import NotAnEnvelopeError
from app.errors import (
    DATABASE_RETRY_AFTER_SECONDS,
    DatabaseUnavailableError,
    VoucherRelayError,
    error_body,
)
from app.metrics.registry import count_rejected_webhook
from app.observability import request_id, request_id_from
from app.webhooks import intake
from app.webhooks.schemas import WebhookAccepted

logger = logging.getLogger(__name__)
router = APIRouter(tags=["webhooks"])

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@router.post(
    intake.PATH,
    status_code=status.HTTP_202_ACCEPTED,
    response_model=WebhookAccepted,
    summary="The Voucherify webhook target (project and distribution webhooks, v2024-01-01)",
    responses={
        200: {"model": WebhookAccepted, "description": "a duplicate: stored before"},
        400: {"description": "not JSON, not a v2024-01-01 envelope, or a legacy body"},
        401: {"description": "missing or wrong x-voucherify-signature"},
        413: {"description": "body over WEBHOOK_MAX_BODY_BYTES"},
        503: {"description": "database unavailable: retry later (Retry-After)"},
    },
)
async def receive(request: Request) -> Response:
    limit = request.app.state.settings.webhook_max_body_bytes
    try:
        intake.check_declared_length(request.headers.get("content-length"), limit)
        chunks, size = [], 0
        async for chunk in request.stream():
            size = intake.add_chunk(size, chunk, limit)
            chunks.append(chunk)
        stored = await intake.receive_webhook(
            raw=b"".join(chunks),
            signature_header=request.headers.get(intake.SIGNATURE_HEADER),
            secrets=request.app.state.webhook_secrets,
            inbox=request.app.state.inbox,
        )
    except VoucherRelayError as exc:
        count_rejected_webhook(exc.status_code)
        raise
    code, body = intake.answer(stored)
    return Response(body, status_code=code, media_type="application/json")


_READ = frozenset({b"x-request-id", b"content-length", intake.SIGNATURE_HEADER.encode()})


class WebhookFastPath:
    """ASGI middleware answering POST /webhooks/voucherify itself; everything else passes on."""

    def __init__(self, app: ASGIApp, *, state: Any) -> None:
        self.app = app
        self.state = state  # the FastAPI app's state: settings, secrets, inbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Only the three headers used here are decoded (this runs for every request).
        headers = {
            k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"] if k in _READ
        }
        # Every request gets an id (the caller's X-Request-Id, or a new one): logged, answered.
        rid = request_id_from(headers.get("x-request-id"))
        request_id.set(rid)
        rid_header = (b"x-request-id", rid.encode("latin-1"))
        if scope["path"] != intake.PATH or scope["method"] != "POST":

            async def send_with_id(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", []), rid_header]
                await send(message)

            await self.app(scope, receive, send_with_id)
            return
        extra: list[tuple[bytes, bytes]] = [rid_header]
        try:
            raw = await self._read_body(receive, headers.get("content-length"))
            stored = await intake.receive_webhook(
                raw=raw,
                signature_header=headers.get(intake.SIGNATURE_HEADER),
                secrets=self.state.webhook_secrets,
                inbox=self.state.inbox,
            )
            code, body = intake.answer(stored)
        except VoucherRelayError as exc:
            code, body, retry = self._error(exc)
            extra += retry
            count_rejected_webhook(code)
        except Exception:
            logger.exception("webhook intake failed")
            code, body = 500, _error_json("internal_error", "an internal error occurred")
            count_rejected_webhook(code)
        await send(
            {
                "type": "http.response.start",
                "status": code,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    *extra,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _read_body(self, receive: Receive, declared: str | None) -> bytes:
        limit = self.state.settings.webhook_max_body_bytes
        intake.check_declared_length(declared, limit)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise NotAnEnvelopeError("the client disconnected before sending the body")
            chunk = message.get("body", b"")
            size = intake.add_chunk(size, chunk, limit)
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)

    def _error(self, exc: VoucherRelayError) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        if isinstance(exc, DatabaseUnavailableError):
            retry = [(b"retry-after", str(DATABASE_RETRY_AFTER_SECONDS).encode())]
            return 503, _error_json(exc.code, exc.message), retry
        return exc.status_code, _error_json(exc.code, exc.message), []


def _error_json(code: str, message: str) -> bytes:
    return orjson.dumps(error_body(code, message))
