"""Voucherify webhook signatures: lower-case hex HMAC-SHA256 of the body (reference 1.5).

Voucherify signs the JSON with whitespace outside strings removed. We check the raw bytes
first (the cheap, common case), then that compact form; both in constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Literal

SignatureResult = Literal["valid_raw", "valid_compact", "missing", "invalid"]

_WHITESPACE = frozenset(b" \t\n\r\f\v")
_QUOTE, _BACKSLASH = ord('"'), ord("\\")


def remove_whitespace(body: bytes) -> bytes:
    """Drop whitespace outside JSON strings, honouring escapes (Voucherify's removeWhitespaces)."""
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


def sign(body: bytes, secret: bytes) -> str:
    # hmac.digest is the one-shot C path: no HMAC object per webhook.
    return hmac.digest(secret, body, "sha256").hex()


def verify(body: bytes, signature: str | None, secrets: Sequence[bytes]) -> SignatureResult:
    """Check `signature` against every configured secret (several during a rotation)."""
    if not signature:
        return "missing"
    presented = signature.strip().lower().encode()
    if any(hmac.compare_digest(sign(body, s).encode(), presented) for s in secrets):
        return "valid_raw"
    compact = remove_whitespace(body)
    if compact != body and any(
        hmac.compare_digest(sign(compact, s).encode(), presented) for s in secrets
    ):
        return "valid_compact"
    return "invalid"
