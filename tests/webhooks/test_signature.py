from __future__ import annotations

import pytest

from app.webhooks.signature import remove_whitespace, sign, verify

KEY = b"secretKey"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (b'{"a":1}', "a17d2ac229d1ebbb5f10e839c7985c4818e5986eab297f7e5979196d4d7d3ed2"),
        (b'{"a\\"b":1}', "f7cf97814a03146abedb9793f56e1dec34f618f82d10395310d053f749483ffb"),
        (b"  message  ", "53ff92957e1427ce23ad5bda9d0c5f2f4ff384d0806b83eeacb510c842d3a358"),
    ],
)
def test_voucherify_reference_vectors(message: bytes, expected: str) -> None:
    assert sign(message, KEY) == expected
    assert verify(message, expected, [KEY]) == "valid_raw"


def test_whitespace_outside_strings_is_removed() -> None:
    assert (
        remove_whitespace(b'{ "a b" : [ 1, 2 ],\n "c": "x\\" y" }') == b'{"a b":[1,2],"c":"x\\" y"}'
    )


def test_escaped_backslash_before_a_quote_ends_the_string() -> None:
    assert remove_whitespace(b'{"a\\\\": 1 }') == b'{"a\\\\":1}'


def test_pretty_printed_body_signed_compact_is_accepted() -> None:
    pretty = b'{\n  "a": 1,\n  "b": "two words"\n}'
    signature = sign(b'{"a":1,"b":"two words"}', KEY)
    assert verify(pretty, signature, [KEY]) == "valid_compact"


def test_raw_signature_is_accepted_even_with_whitespace() -> None:
    pretty = b'{\n  "a": 1\n}'
    assert verify(pretty, sign(pretty, KEY), [KEY]) == "valid_raw"


def test_upper_case_hex_is_accepted() -> None:
    assert verify(b"{}", sign(b"{}", KEY).upper(), [KEY]) == "valid_raw"


def test_any_configured_secret_verifies_during_rotation() -> None:
    body = b'{"a":1}'
    secrets = [b"old-secret", b"new-secret"]
    assert verify(body, sign(body, b"old-secret"), secrets) == "valid_raw"
    assert verify(body, sign(body, b"new-secret"), secrets) == "valid_raw"
    assert verify(body, sign(body, b"retired"), secrets) == "invalid"


def test_missing_and_wrong_signatures_are_refused() -> None:
    assert verify(b"{}", None, [KEY]) == "missing"
    assert verify(b"{}", "", [KEY]) == "missing"
    assert verify(b"{}", "00" * 32, [KEY]) == "invalid"
    assert verify(b'{"a":1}', sign(b'{"a":2}', KEY), [KEY]) == "invalid"


def test_a_body_holding_a_raw_control_byte_is_not_compacted() -> None:
    # No JSON text holds one raw; the compact form borrows those bytes as markers.
    body = b'{ "a": "\x01 b" }'
    assert remove_whitespace(body) is None
    assert verify(body, sign(b'{"a":"\x01 b"}', KEY), [KEY]) == "invalid"


def test_spaces_inside_strings_survive_among_many_strings() -> None:
    body = b'[ "a b" , "" , " ", "\\\\", "\\" x" ,"c d"\n]'
    assert remove_whitespace(body) == b'["a b",""," ","\\\\","\\" x","c d"]'
