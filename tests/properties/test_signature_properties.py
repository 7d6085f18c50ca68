"""Properties of the webhook signature check (app/webhooks/signature.py), for any body and key."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any
from unittest import mock

from hypothesis import assume, given
from hypothesis import strategies as st

from app.webhooks.signature import remove_whitespace, sign, verify
from tests.factories import remove_whitespace_byte_by_byte
from tests.properties.strategies import json_values

bodies = st.binary(max_size=512)
secrets = st.binary(min_size=1, max_size=80)
WHITESPACE = b" \t\n\r\f\v"


def hmac_key(secret: bytes) -> bytes:
    """What HMAC really keys on: long keys are hashed, short ones zero-padded (RFC 2104).

    So b"k" and b"k\\x00" are the same key; "a wrong secret" means a different one of these."""
    key = hashlib.sha256(secret).digest() if len(secret) > 64 else secret
    return key.rstrip(b"\x00")


@given(body=bodies, secret=secrets, others=st.lists(secrets, max_size=3), data=st.data())
def test_a_body_signed_with_any_configured_secret_verifies(
    body: bytes, secret: bytes, others: list[bytes], data: st.DataObject
) -> None:
    configured = list(others)
    configured.insert(data.draw(st.integers(0, len(others)), label="position"), secret)
    assert verify(body, sign(body, secret), configured) == "valid_raw"


@given(body=bodies, secret=secrets, padding=st.sampled_from(["", " ", "\t", " \r\n"]))
def test_the_header_may_be_upper_case_and_padded(body: bytes, secret: bytes, padding: str) -> None:
    presented = f"{padding}{sign(body, secret).upper()}{padding}"
    assert verify(body, presented, [secret]) == "valid_raw"


@given(body=bodies, secret=secrets, configured=st.lists(secrets, min_size=1, max_size=3))
def test_a_signature_made_with_another_secret_is_refused(
    body: bytes, secret: bytes, configured: list[bytes]
) -> None:
    assume(all(hmac_key(secret) != hmac_key(other) for other in configured))
    assert verify(body, sign(body, secret), configured) == "invalid"


@given(body=st.binary(min_size=1, max_size=512), secret=secrets, data=st.data())
def test_changing_any_single_byte_of_the_body_is_refused(
    body: bytes, secret: bytes, data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, len(body) - 1), label="index")
    replacement = data.draw(st.integers(0, 255).filter(lambda b: b != body[index]), label="byte")
    tampered = body[:index] + bytes([replacement]) + body[index + 1 :]
    # Same length, different bytes: not even the whitespace-stripped form can equal the original.
    assert verify(tampered, sign(body, secret), [secret]) == "invalid"


@given(body=bodies, secret=secrets, data=st.data())
def test_changing_any_single_hex_digit_of_the_signature_is_refused(
    body: bytes, secret: bytes, data: st.DataObject
) -> None:
    good = sign(body, secret)
    index = data.draw(st.integers(0, len(good) - 1), label="index")
    digit = data.draw(st.sampled_from("0123456789abcdef").filter(lambda d: d != good[index]))
    assert verify(body, good[:index] + digit + good[index + 1 :], [secret]) == "invalid"


@given(body=bodies, secret=secrets)
def test_a_missing_signature_is_reported_as_missing(body: bytes, secret: bytes) -> None:
    assert verify(body, None, [secret]) == verify(body, "", [secret]) == "missing"


def _pretty(value: Any, indent: int | None, space: str) -> bytes:
    # ensure_ascii=False keeps spaces and non-ASCII text raw inside strings, where they must stay.
    return json.dumps(
        value, indent=indent, separators=("," + space, ":" + space), ensure_ascii=False
    ).encode()


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


@given(
    value=json_values(),
    indent=st.none() | st.integers(0, 4),
    space=st.sampled_from(["", " ", "  "]),
)
def test_whitespace_removal_gives_the_compact_form_and_keeps_every_string(
    value: Any, indent: int | None, space: str
) -> None:
    pretty = _pretty(value, indent, space)
    stripped = remove_whitespace(pretty)
    assert stripped == _compact(value)
    assert json.loads(stripped) == value  # strings (with their spaces, quotes, escapes) intact


@given(value=json_values(), indent=st.integers(0, 4), secret=secrets)
def test_a_pretty_body_signed_over_its_compact_form_verifies(
    value: Any, indent: int, secret: bytes
) -> None:
    pretty, compact = _pretty(value, indent, " "), _compact(value)
    expected = "valid_raw" if pretty == compact else "valid_compact"
    assert verify(pretty, sign(compact, secret), [secret]) == expected


@given(body=st.binary(max_size=512) | st.builds(lambda v: _pretty(v, 2, " "), json_values()))
def test_whitespace_removal_only_drops_whitespace(body: bytes) -> None:
    stripped = remove_whitespace(body)
    if stripped is None:  # a raw control byte: no JSON text, so no webhook, holds one
        assert any(b in body for b in b"\x01\x03\x04")
        return
    without_any_whitespace = bytes(b for b in body if b not in WHITESPACE)
    assert bytes(b for b in stripped if b not in WHITESPACE) == without_any_whitespace


@given(
    value=json_values(),
    indent=st.none() | st.integers(0, 4),
    space=st.sampled_from(["", " ", "  ", " \t", "\r\n "]),
    ascii_only=st.booleans(),
    cut=st.integers(0, 10_000),
)
def test_whitespace_removal_matches_the_byte_by_byte_reference(
    value: Any, indent: int | None, space: str, ascii_only: bool, cut: int
) -> None:
    # Any JSON text, cut anywhere too (an unterminated string keeps everything to the end).
    text = json.dumps(
        value, indent=indent, separators=(",", ":" + space), ensure_ascii=ascii_only
    ).encode("utf-8", "surrogatepass")
    for body in (text, text[: cut % (len(text) + 1)]):
        stripped = remove_whitespace(body)
        assert stripped == remove_whitespace_byte_by_byte(body)
        assert remove_whitespace(stripped) == stripped


@given(
    body=bodies,
    presented=st.text(max_size=80) | st.text("0123456789abcdef", min_size=64, max_size=64),
    configured=st.lists(secrets, min_size=1, max_size=3),
)
def test_every_comparison_goes_through_the_constant_time_compare(
    body: bytes, presented: str, configured: list[bytes]
) -> None:
    # signature.py calls hmac.compare_digest through the module: spy on it there.
    with mock.patch.object(hmac, "compare_digest", wraps=hmac.compare_digest) as compare:
        result = verify(body, presented, configured)
    if not presented:
        assert result == "missing" and compare.call_count == 0
        return
    if result == "invalid":
        # No early exit: each secret is compared against the raw body, and again against the
        # stripped body when stripping changed anything.
        forms = 1 if remove_whitespace(body) in (None, body) else 2
        assert compare.call_count == forms * len(configured)
    else:
        assert compare.call_count >= 1
