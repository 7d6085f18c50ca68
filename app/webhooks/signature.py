"""Voucherify webhook signatures: lower-case hex HMAC-SHA256 of the body (reference 1.5).

Voucherify signs the JSON with whitespace outside strings removed. We check the raw bytes
first (the cheap, common case), then that compact form; both in constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Literal

SignatureResult = Literal["valid_raw", "valid_compact", "missing", "invalid"]

_WHITESPACE = b" \t\n\r\f\v"
# Bytes valid JSON never holds raw (control characters), borrowed as markers below.
_INSIDE_SPACE, _ESCAPE, _ESCAPED_QUOTE = b"\x01", b"\x03", b"\x04"


def _flags(ones: bytes) -> bytes:
    """A translate table writing "1" for the bytes of `ones` and "0" for every other."""
    return bytes(0x31 if i in ones else 0x30 for i in range(256))


_QUOTE_FLAGS, _SPACE_FLAGS = _flags(b'"'), _flags(b" ")
_FLAG_TO_MARK = bytes(ord(" ") - _INSIDE_SPACE[0] if i == 0x31 else 0 for i in range(256))
_UNMARK = (
    bytes(range(256))
    .replace(_INSIDE_SPACE, b" ")
    .replace(_ESCAPE, b"\\")
    .replace(_ESCAPED_QUOTE, b'"')
)


def remove_whitespace(body: bytes) -> bytes | None:
    """Drop whitespace outside JSON strings, honouring escapes (Voucherify's removeWhitespaces).

    None for a body holding a raw control byte no JSON text holds (it cannot be a webhook).
    Every step is a C-level pass over the body (translate, replace, big-integer bit operations),
    none a Python loop over its bytes or tokens: this runs for every body whose raw signature
    fails, junk included, so its cost must not depend on what the body holds.
    """
    size = len(body)
    if len(body.translate(None, _WHITESPACE)) == size:
        return body
    if len(body.translate(None, _INSIDE_SPACE + _ESCAPE + _ESCAPED_QUOTE)) != size:
        return None
    if b'"' not in body:  # no strings: every whitespace byte goes
        return body.translate(None, _WHITESPACE)
    text = body
    if b"\\" in text:  # escape pairs, paired from the left as JSON pairs them, become markers:
        # every '"' left then opens or closes a string
        text = text.replace(b"\\\\", _ESCAPE * 2).replace(b'\\"', _ESCAPE + _ESCAPED_QUOTE)
    # One bit per byte, the first byte the highest: a prefix XOR of the quote bits is 1 from an
    # opening quote to the byte before its closing one, so over exactly the strings' contents.
    inside = int(text.translate(_QUOTE_FLAGS), 2)
    shift = 1
    while shift < size:
        inside ^= inside >> shift
        shift <<= 1
    # Only a space can stand raw inside a JSON string (other whitespace must be escaped there).
    kept = inside & int(text.translate(_SPACE_FLAGS), 2)
    if kept:  # those spaces become markers, so that deleting whitespace spares them
        marks = format(kept, f"0{size}b").encode().translate(_FLAG_TO_MARK)
        text = (int.from_bytes(text) - int.from_bytes(marks)).to_bytes(size)
    return text.translate(_UNMARK, _WHITESPACE)


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
    if (
        compact is not None
        and compact != body
        and any(hmac.compare_digest(sign(compact, s).encode(), presented) for s in secrets)
    ):
        return "valid_compact"
    return "invalid"
