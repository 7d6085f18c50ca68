from __future__ import annotations

import json
from typing import Any

import pytest

from app.braze.payload import (
    MAX_BODY_BYTES,
    MAX_OBJECTS_PER_REQUEST,
    build_track_body,
    lookup_identifier,
    split_into_batches,
    validate_attributes_object,
)


def test_object_with_one_external_id_is_valid() -> None:
    assert validate_attributes_object({"external_id": "u1", "voucher_code": "ABC-123"}) == []


@pytest.mark.parametrize(
    ("obj", "identifier"),
    [
        ({"external_id": "u1", "email": "a@b.c"}, "external_id"),
        ({"user_alias": {"alias_name": "n", "alias_label": "l"}}, "user_alias"),
        ({"braze_id": "5f1"}, "braze_id"),
        ({"email": "a@b.c", "phone": "+33600000000"}, "email"),
        ({"phone": "+33600000000"}, "phone"),
    ],
)
def test_lookup_uses_the_primary_identifier_else_email_else_phone(
    obj: dict[str, Any], identifier: str
) -> None:
    assert lookup_identifier(obj) == identifier
    assert validate_attributes_object(obj) == []


def test_object_without_identifier_is_refused() -> None:
    problems = validate_attributes_object({"voucher_code": "ABC"})
    assert len(problems) == 1 and "no identifier" in problems[0]


def test_object_with_two_primary_identifiers_is_refused() -> None:
    problems = validate_attributes_object({"external_id": "u1", "braze_id": "b1"})
    assert problems == [
        "more than one primary identifier: external_id, braze_id (exactly one allowed)"
    ]


@pytest.mark.parametrize(
    "alias", [{"alias_name": "n"}, {"alias_name": "", "alias_label": "l"}, "n:l"]
)
def test_user_alias_needs_a_name_and_a_label(alias: object) -> None:
    problems = validate_attributes_object({"user_alias": alias})
    assert problems and all("user_alias" in p for p in problems)


@pytest.mark.parametrize("value", ["", 42])
def test_identifier_must_be_a_non_empty_string(value: object) -> None:
    assert validate_attributes_object({"external_id": value}) == [
        "external_id must be a non-empty string"
    ]


def test_external_id_over_987_bytes_is_refused() -> None:
    assert validate_attributes_object({"external_id": "é" * 494}) == [
        "external_id is longer than 987 bytes"
    ]
    assert validate_attributes_object({"external_id": "x" * 987}) == []


def test_string_of_255_characters_passes_and_256_is_reported() -> None:
    assert validate_attributes_object({"external_id": "u1", "code": "x" * 255}) == []
    problems = validate_attributes_object({"external_id": "u1", "code": "x" * 256})
    assert problems == ["code: string of 256 characters (max 255)"]


def test_long_strings_inside_objects_and_arrays_are_reported() -> None:
    obj = {"external_id": "u1", "wallet": {"codes": ["ok", "y" * 300]}}
    assert validate_attributes_object(obj) == [
        "wallet.codes[1]: string of 300 characters (max 255)"
    ]


def test_key_name_over_255_characters_is_reported() -> None:
    problems = validate_attributes_object({"external_id": "u1", "k" * 256: 1})
    assert len(problems) == 1 and "key" in problems[0]


def test_email_next_to_a_primary_identifier_is_checked_as_an_attribute() -> None:
    problems = validate_attributes_object({"external_id": "u1", "email": "e" * 256})
    assert problems == ["email: string of 256 characters (max 255)"]


def test_non_object_is_refused() -> None:
    assert validate_attributes_object(["external_id", "u1"]) == [
        "an attributes object must be a JSON object"
    ]


def test_value_that_json_cannot_carry_is_reported() -> None:
    problems = validate_attributes_object({"external_id": "u1", "balance": float("nan")})
    assert len(problems) == 1 and "not encodable" in problems[0]


def test_object_too_big_for_one_request_is_reported() -> None:
    huge = {"external_id": "u1", **{f"a{i}": "x" * 250 for i in range(17_000)}}
    problems = validate_attributes_object(huge)
    assert len(problems) == 1 and "more than one request may carry" in problems[0]


def test_track_body_is_compact_utf8_json_under_attributes() -> None:
    body = build_track_body([{"external_id": "u1", "code": "é"}, {"braze_id": "b"}])
    assert body == '{"attributes":[{"external_id":"u1","code":"é"},{"braze_id":"b"}]}'.encode()


def _objects(count: int, *, value_size: int = 10) -> list[dict[str, Any]]:
    return [{"external_id": f"u{i}", "code": "x" * value_size} for i in range(count)]


def test_batches_hold_at_most_75_objects() -> None:
    batches = split_into_batches(_objects(200))
    assert [len(b) for b in batches] == [75, 75, 50]
    assert MAX_OBJECTS_PER_REQUEST == 75


def test_batches_keep_every_object_in_order() -> None:
    objects = _objects(160)
    batches = split_into_batches(objects, max_objects=50)
    assert [obj for batch in batches for obj in batch] == objects


def test_batches_never_exceed_four_megabytes() -> None:
    # 60 objects of ~100 KB: the object limit alone would allow one request of 6 MB.
    objects = [
        {"external_id": f"u{i}", **{f"attr_{n}": "x" * 200 for n in range(500)}} for i in range(60)
    ]
    batches = split_into_batches(objects)
    assert len(batches) == 2
    assert all(len(build_track_body(batch)) <= MAX_BODY_BYTES for batch in batches)
    assert len(build_track_body(batches[0] + batches[1][:1])) > MAX_BODY_BYTES


def test_a_batch_may_fill_the_byte_limit_exactly() -> None:
    objects = _objects(10)
    exact = len(build_track_body(objects[:4]))
    batches = split_into_batches(objects, max_bytes=exact)
    assert [len(b) for b in batches] == [4, 4, 2]
    assert all(len(build_track_body(b)) <= exact for b in batches)


def test_object_that_cannot_fit_any_request_is_refused() -> None:
    objects = _objects(3)
    objects[1]["code"] = "x" * 500
    with pytest.raises(ValueError, match="object 1 encodes to 530 bytes, over the 400 limit"):
        split_into_batches(objects, max_bytes=400)


@pytest.mark.parametrize(
    ("max_objects", "max_bytes"), [(0, 1000), (76, 1000), (75, MAX_BODY_BYTES + 1)]
)
def test_limits_beyond_brazes_are_refused(max_objects: int, max_bytes: int) -> None:
    with pytest.raises(ValueError, match="must"):
        split_into_batches(_objects(1), max_objects=max_objects, max_bytes=max_bytes)


def test_no_objects_make_no_batches() -> None:
    assert split_into_batches([]) == []


def test_body_is_what_json_decoding_gives_back() -> None:
    objects = _objects(3)
    assert json.loads(build_track_body(objects)) == {"attributes": objects}
