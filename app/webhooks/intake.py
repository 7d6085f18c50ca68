"""The webhook request, top to bottom: verify -> parse -> store -> answer.

Nothing else happens here: Voucherify gives up after 10 s, bursts are common, and Braze is the
worker's job. Errors are raised as domain errors; `app.main` renders them as JSON.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import orjson

from app.distributions import envelope as envelope_parser
from app.distributions.envelope import NotAnEnvelopeError
from app.distributions.triggers import KNOWN_TRIGGERS
from app.errors import VoucherRelayError
from app.metrics.labels import OTHER
from app.metrics.registry import count_webhook
from app.webhooks import signature
from app.webhooks.group_commit import StoredEvent
from app.webhooks.inbox import Inbox

logger = logging.getLogger(__name__)

PATH = "/webhooks/voucherify"
SIGNATURE_HEADER = "x-voucherify-signature"


class BadSignatureError(VoucherRelayError):
    status_code = 401
    code = "bad_signature"


class BodyTooLargeError(VoucherRelayError):
    status_code = 413
    code = "body_too_large"


def event_type_label(event_type: str) -> str:
    return event_type if event_type in KNOWN_TRIGGERS else OTHER


async def receive_webhook(
    *, raw: bytes, signature_header: str | None, secrets: Sequence[bytes], inbox: Inbox
) -> StoredEvent:
    """Store a verified Voucherify webhook; returns once it is committed."""
    if not secrets:
        raise BadSignatureError("VOUCHERIFY_WEBHOOK_SECRET is not set: webhooks cannot be verified")
    checked = signature.verify(raw, signature_header, secrets)
    if checked in ("missing", "invalid"):
        raise BadSignatureError(f"{checked} {SIGNATURE_HEADER} header")

    try:
        envelope = envelope_parser.parse(raw)
    except envelope_parser.EnvelopeError as exc:
        raise NotAnEnvelopeError(str(exc)) from None

    stored = await inbox.store(envelope=envelope, raw_body=raw, signature=checked)
    count_webhook(
        event_type_label(envelope.event_type),
        "duplicate" if stored.duplicate else stored.outcome,
        _status(stored),
    )
    if logger.isEnabledFor(logging.INFO):
        logger.info(
            "webhook %s %s from %s: %s, %d deliveries%s",
            envelope.event_id, envelope.event_type, envelope.source_id, stored.outcome,
            stored.deliveries, " (duplicate)" if stored.duplicate else "",
            extra={"voucherify_event_id": envelope.event_id, "event_id": stored.event_id},
        )  # fmt: skip
    return stored


def answer(stored: StoredEvent) -> tuple[int, bytes]:
    """202 for a new event, 200 for one stored before; the body says which."""
    body = {
        "event_id": stored.event_id,
        "duplicate": stored.duplicate,
        "outcome": stored.outcome,
        "deliveries": stored.deliveries,
    }
    return _status(stored), orjson.dumps(body)


def _status(stored: StoredEvent) -> int:
    return 200 if stored.duplicate else 202


def check_declared_length(declared: str | None, limit: int) -> None:
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError(f"the body is {declared} bytes; the limit is {limit}")


def add_chunk(size: int, chunk: bytes, limit: int) -> int:
    size += len(chunk)
    if size > limit:
        raise BodyTooLargeError(f"the body is over the limit of {limit} bytes")
    return size
