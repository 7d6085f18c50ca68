"""POST /webhooks/voucherify — verify, parse, store, answer. Nothing else happens here: the
answer must come in milliseconds (Voucherify gives up after 10 s), and Braze is the worker's job."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse

from app.config import Settings
from app.db.session import SessionDep
from app.errors import VoucherRelayError
from app.webhooks import envelope as envelope_parser
from app.webhooks import service, signature
from app.webhooks.schemas import WebhookAccepted

logger = logging.getLogger(__name__)
router = APIRouter(tags=["webhooks"])

SIGNATURE_HEADER = "x-voucherify-signature"


class WebhookRejectedError(VoucherRelayError):
    pass


class BadSignatureError(WebhookRejectedError):
    status_code = 401
    code = "bad_signature"


class NotAnEnvelopeError(WebhookRejectedError):
    status_code = 400
    code = "invalid_webhook"


class BodyTooLargeError(WebhookRejectedError):
    status_code = 413
    code = "body_too_large"


@router.post(
    "/webhooks/voucherify",
    status_code=status.HTTP_202_ACCEPTED,
    summary="The Voucherify webhook target (project and distribution webhooks, v2024-01-01)",
    responses={
        200: {"model": WebhookAccepted, "description": "a duplicate: stored before"},
        400: {"description": "not JSON, not a v2024-01-01 envelope, or a legacy body"},
        401: {"description": "missing or wrong x-voucherify-signature"},
        413: {"description": "body over WEBHOOK_MAX_BODY_BYTES"},
        503: {"description": "database unavailable: retry later (Retry-After)"},
    },
)
async def receive(request: Request, session: SessionDep) -> Response:
    settings: Settings = request.app.state.settings
    raw = await _read_body(request, limit=settings.webhook_max_body_bytes)

    secrets = request.app.state.webhook_secrets
    if not secrets:
        raise BadSignatureError("VOUCHERIFY_WEBHOOK_SECRET is not set: webhooks cannot be verified")
    checked = signature.verify(raw, request.headers.get(SIGNATURE_HEADER), secrets)
    if checked in ("missing", "invalid"):
        raise BadSignatureError(f"{checked} {SIGNATURE_HEADER} header")

    try:
        envelope = envelope_parser.parse(raw)
    except envelope_parser.EnvelopeError as exc:
        raise NotAnEnvelopeError(str(exc)) from None

    stored = await service.store_event(
        session=session, envelope=envelope, raw_body=raw, signature=checked
    )
    logger.info(
        "webhook %s %s from %s: %s, %d deliveries%s",
        envelope.event_id, envelope.event_type, envelope.source_id, stored.outcome,
        stored.deliveries, " (duplicate)" if stored.duplicate else "",
    )  # fmt: skip
    answer = WebhookAccepted(
        event_id=stored.event_id,
        duplicate=stored.duplicate,
        outcome=stored.outcome,
        deliveries=stored.deliveries,
    )
    return JSONResponse(answer.model_dump(), status_code=200 if stored.duplicate else 202)


async def _read_body(request: Request, *, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError(f"the body is {declared} bytes; the limit is {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(f"the body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
