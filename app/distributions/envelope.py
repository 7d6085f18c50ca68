"""The Voucherify webhook envelope v2024-01-01 (reference 1.1): parsing, and what intake needs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from app.distributions.mapping import event_time
from app.distributions.triggers import KNOWN_TRIGGERS
from app.errors import VoucherRelayError


class NotAnEnvelopeError(VoucherRelayError):
    """A webhook body (or a preview's sample) that is not a Voucherify event envelope."""

    status_code = 400
    code = "invalid_webhook"


class EnvelopeError(ValueError):
    """The body is not a Voucherify v2024-01-01 envelope; the message says why."""


@dataclass(frozen=True)
class Envelope:
    body: dict[str, Any]
    event_id: str
    event_type: str
    source_id: str
    source_object: str
    send_out_id: str | None
    project_id: str | None
    customer_id: str | None
    customer_source_id: str | None
    occurred_at: datetime | None

    @property
    def known_type(self) -> bool:
        return self.event_type in KNOWN_TRIGGERS


# The ids of the inbox's unique key; Voucherify's are ~25 characters. A longer one is refused
# (400) before any insert: the key's index cannot take values of any length.
MAX_ID_LENGTH = 100


def _given(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _text(value: Any, limit: int | None = None) -> str | None:
    """A non-empty string (within `limit`, when given), else None: these columns are search
    keys; the raw body keeps the data. Postgres text cannot hold the NUL character: a key with
    one is no key."""
    if not isinstance(value, str) or not value or "\x00" in value:
        return None
    return value if limit is None or len(value) <= limit else None


def parse(raw: bytes) -> Envelope:
    """The envelope of a raw webhook body; EnvelopeError says why it is not one."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise EnvelopeError(f"the body is not valid JSON (UTF-8): {exc}") from None
    return from_body(body)


def from_body(body: Any) -> Envelope:
    """The envelope of an already parsed body (intake and preview check bodies alike)."""
    if not isinstance(body, dict):
        raise EnvelopeError("the body is not a JSON object")
    if body.get("object") == "event" or "webhook_id" in body:
        raise EnvelopeError(
            "this is a legacy v2018-08-01 webhook; set the webhook's version to v2024-01-01 "
            "in Voucherify (Project settings > Webhooks)"
        )
    event, source = body.get("event"), body.get("source")
    if not isinstance(event, dict) or not _given(event.get("type")) or not _given(event.get("id")):
        raise EnvelopeError(
            "not a Voucherify v2024-01-01 envelope: event.id and event.type are required "
            "(for distribution webhooks, keep the default payload: no raw payload, all fields)"
        )
    if not isinstance(source, dict) or not _given(source.get("id")):
        raise EnvelopeError("not a Voucherify v2024-01-01 envelope: source.id is required")
    for name, value in (
        ("event.id", event["id"]),
        ("event.type", event["type"]),
        ("source.id", source["id"]),
    ):
        if len(value) > MAX_ID_LENGTH:
            raise EnvelopeError(f"{name} is longer than {MAX_ID_LENGTH} characters")
        if "\x00" in value:
            raise EnvelopeError(f"{name} contains the NUL character")
    if "data" in body and not isinstance(body["data"], dict):
        raise EnvelopeError("not a Voucherify v2024-01-01 envelope: data must be an object")

    data = body.get("data") or {}
    customer: dict[str, Any] = data["customer"] if isinstance(data.get("customer"), dict) else {}
    voucher: dict[str, Any] = data["voucher"] if isinstance(data.get("voucher"), dict) else {}
    return Envelope(
        body=body,
        event_id=event["id"],
        event_type=event["type"],
        source_id=source["id"],
        # `webhook` or `distribution`; anything else is no kind voucher-relay knows.
        source_object=_text(source.get("object"), 20) or "unknown",
        send_out_id=_text(body.get("id")),
        project_id=_text(body.get("project_id")),
        customer_id=_text(customer.get("id")) or _text(voucher.get("holder_id")),
        customer_source_id=_text(customer.get("source_id")),
        occurred_at=event_time(body),
    )
