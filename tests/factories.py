"""Builders for test data: distributions as the API takes them, envelopes as Voucherify sends."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures" / "events"
SHARED_SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"


@cache
def _load(name: str) -> dict[str, Any]:
    for folder in (FIXTURES, SHARED_SAMPLES):
        path = folder / f"{name}.json"
        if path.exists():
            loaded: dict[str, Any] = json.loads(path.read_text())
            return loaded
    raise FileNotFoundError(name)


def sample(name: str) -> dict[str, Any]:
    """A fresh copy of a sample webhook body, by event type (e.g. customer.order.paid)."""
    return copy.deepcopy(_load(name))


def sample_names() -> list[str]:
    return sorted(path.stem for path in FIXTURES.glob("*.json"))


def distribution_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "welcome-code",
        "triggers": ["customer.segment.entered"],
        "filters": {"segment_id": "seg_Vq7Lm2Rt9Kx4Nb1Zc8Hs3Pw"},
        "code_source": {"type": "event"},
        "identity": {"type": "external_id", "path": "customer.source_id"},
        "consent": {"metadata_key": "braze_opt_in"},
        "mapping": [
            {"source": "voucher.code", "attribute": "welcome_code"},
            {
                "source": "voucher.expiration_date",
                "attribute": "welcome_code_expires_at",
                "format": "iso_datetime",
            },
        ],
        "action": "set",
        "update_existing_only": False,
        "status": "active",
    }
    body.update(overrides)
    return body


WEBHOOK_SECRET = "test-webhook-secret"


def signed(
    body: dict[str, Any] | bytes, secret: str = WEBHOOK_SECRET
) -> tuple[bytes, dict[str, str]]:
    """The bytes to post and the headers Voucherify would send with them."""
    from app.webhooks.signature import sign

    raw = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
    return raw, {
        "content-type": "application/json",
        "x-voucherify-signature": sign(raw, secret.encode()),
    }


_WHITESPACE = frozenset(b" \t\n\r\f\v")
_QUOTE, _BACKSLASH = ord('"'), ord("\\")


def remove_whitespace_byte_by_byte(body: bytes) -> bytes:
    """Voucherify's removeWhitespaces one byte at a time, as the signature check ran it before
    its C-level passes: the reference they are tested and benchmarked against."""
    if not any(byte in _WHITESPACE for byte in body):
        return body
    out = bytearray()
    in_string = escaped = False
    for byte in body:
        if in_string:
            out.append(byte)
            if escaped:
                escaped = False
            elif byte == _BACKSLASH:
                escaped = True
            elif byte == _QUOTE:
                in_string = False
        elif byte == _QUOTE:
            in_string = True
            out.append(byte)
        elif byte not in _WHITESPACE:
            out.append(byte)
    return bytes(out)
