from __future__ import annotations

from app.db.nul import contains_nul, without_nul


def test_a_nul_is_found_in_nested_values_and_keys() -> None:
    assert contains_nul({"a": [1, {"b": "x\x00"}]})
    assert contains_nul({"k\x00": 1})
    assert not contains_nul({"a": ["\\u0000", 0, None, True]})


def test_without_nul_replaces_visibly_and_leaves_the_input_alone() -> None:
    value = {"k\x00": ["a\x00b", 3]}
    assert without_nul(value) == {"k\ufffd": ["a\ufffdb", 3]}
    assert value == {"k\x00": ["a\x00b", 3]}
    assert without_nul(None) is None
