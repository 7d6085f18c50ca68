"""Braze `/users/track` request rules as pure functions: identifiers, limits, encoding, batching.

Facts from `reference/braze.md` §0-§1: at most 75 objects per request (attributes, events and
purchases together), a body of at most 4 MB, string values and key names of at most 255
characters, exactly one primary identifier per object (or `email`/`phone` alone).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

TRACK_PATH = "/users/track"

MAX_OBJECTS_PER_REQUEST = 75
# "4 MB" is not said to be binary or decimal: the decimal reading is the stricter one.
MAX_BODY_BYTES = 4_000_000
MAX_STRING_LENGTH = 255
MAX_EXTERNAL_ID_BYTES = 987

PRIMARY_IDENTIFIERS = ("external_id", "user_alias", "braze_id")
# Used for lookup only when no primary identifier is present; `email` wins over `phone`.
SECONDARY_IDENTIFIERS = ("email", "phone")
ALIAS_FIELDS = ("alias_name", "alias_label")

# What `build_track_body([])` encodes to, and what each further object adds besides itself.
_ENVELOPE_BYTES = len(b'{"attributes":[]}')
_SEPARATOR_BYTES = len(b",")

BrazeObject = Mapping[str, Any]


def encode_json(value: object) -> bytes:
    """Compact UTF-8 JSON, the exact bytes sent to Braze (NaN and Infinity are refused)."""
    if _has_non_finite(value):
        raise ValueError("NaN and Infinity cannot be sent as JSON")
    return orjson.dumps(value)


def _has_non_finite(value: object) -> bool:
    # orjson writes NaN as null; Braze would then unset the attribute. Refuse instead.
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_non_finite(v) for v in value)
    return False


def build_track_body(objects: Sequence[BrazeObject]) -> bytes:
    """The `/users/track` body `{"attributes": [...]}` for these attribute objects, compact."""
    return encode_json({"attributes": [dict(obj) for obj in objects]})


def primary_identifiers(obj: BrazeObject) -> list[str]:
    """The primary identifier keys present (with a non-null value) in the object, in Braze order."""
    return [key for key in PRIMARY_IDENTIFIERS if obj.get(key) is not None]


def lookup_identifier(obj: BrazeObject) -> str | None:
    """The key Braze uses to find the user: the single primary one, else `email`, else `phone`.

    None when there is no identifier or more than one primary identifier.
    """
    primaries = primary_identifiers(obj)
    if len(primaries) == 1:
        return primaries[0]
    if primaries:
        return None
    return next((key for key in SECONDARY_IDENTIFIERS if obj.get(key) is not None), None)


def validate_attributes_object(obj: object) -> list[str]:
    """Every reason Braze would refuse or silently drop part of this attributes object.

    An empty list means the object can be sent. Checks: exactly one primary identifier (or
    `email`/`phone` alone), well-formed identifier values, key names and string values (nested
    ones included) of at most 255 characters, and an encoded size that fits one request.
    """
    if not isinstance(obj, Mapping):
        return ["an attributes object must be a JSON object"]
    problems = _identifier_problems(obj)
    identifier = lookup_identifier(obj)
    for key, value in obj.items():
        if key == identifier or key in PRIMARY_IDENTIFIERS:
            continue
        problems.extend(value_problems(str(key), str(key), value))
    try:
        size = len(encode_json(obj))
    except ValueError as exc:
        return [*problems, f"not encodable as JSON: {exc}"]
    if size > MAX_BODY_BYTES - _ENVELOPE_BYTES:
        problems.append(f"encodes to {size} bytes, more than one request may carry")
    return problems


def _identifier_problems(obj: BrazeObject) -> list[str]:
    primaries = primary_identifiers(obj)
    if len(primaries) > 1:
        return [f"more than one primary identifier: {', '.join(primaries)} (exactly one allowed)"]
    identifier = lookup_identifier(obj)
    if identifier is None:
        return ["no identifier: one of external_id, user_alias, braze_id (or email/phone) needed"]
    value = obj[identifier]
    if identifier == "user_alias":
        if not isinstance(value, Mapping):
            return ["user_alias must be an object with alias_name and alias_label"]
        return [
            f"user_alias.{field} must be a non-empty string"
            for field in ALIAS_FIELDS
            if not isinstance(value.get(field), str) or not value[field]
        ]
    if not isinstance(value, str) or not value:
        return [f"{identifier} must be a non-empty string"]
    if identifier == "external_id" and len(value.encode()) > MAX_EXTERNAL_ID_BYTES:
        return [f"external_id is longer than {MAX_EXTERNAL_ID_BYTES} bytes"]
    return []


def value_problems(path: str, key: str, value: object) -> list[str]:
    """Long keys and strings anywhere in a value: Braze drops them without reporting an error."""
    problems: list[str] = []
    if len(key) > MAX_STRING_LENGTH:
        problems.append(f"key {path[:40]!r}... is longer than {MAX_STRING_LENGTH} characters")
    if isinstance(value, str) and len(value) > MAX_STRING_LENGTH:
        problems.append(f"{path}: string of {len(value)} characters (max {MAX_STRING_LENGTH})")
    elif isinstance(value, Mapping):
        for name, item in value.items():
            problems.extend(value_problems(f"{path}.{name}", str(name), item))
    elif isinstance(value, list):
        for position, item in enumerate(value):
            problems.extend(value_problems(f"{path}[{position}]", "", item))
    return problems


def unsendable(obj: BrazeObject) -> str | None:
    """Why no request can carry this object, even alone (None: one can)."""
    try:
        size = len(encode_json(dict(obj)))
    except ValueError as exc:
        return f"not encodable as JSON: {exc}"
    if _ENVELOPE_BYTES + size > MAX_BODY_BYTES:
        return f"encodes to {size} bytes, more than one request may carry"
    return None


def split_into_batches(
    objects: Sequence[BrazeObject],
    *,
    max_objects: int = MAX_OBJECTS_PER_REQUEST,
    max_bytes: int = MAX_BODY_BYTES,
) -> list[list[BrazeObject]]:
    """Consecutive batches, in order, whose `build_track_body` has at most `max_objects` objects
    and at most `max_bytes` bytes.

    Raises ValueError when a limit is out of range or one object alone cannot fit in `max_bytes`
    (validate objects first: such an object can never be sent).
    """
    if not 1 <= max_objects <= MAX_OBJECTS_PER_REQUEST:
        raise ValueError(f"max_objects must be within 1..{MAX_OBJECTS_PER_REQUEST}")
    if max_bytes > MAX_BODY_BYTES:
        raise ValueError(f"max_bytes must not exceed {MAX_BODY_BYTES}")
    batches: list[list[BrazeObject]] = []
    current: list[BrazeObject] = []
    current_bytes = _ENVELOPE_BYTES
    for index, obj in enumerate(objects):
        size = len(encode_json(dict(obj)))
        if _ENVELOPE_BYTES + size > max_bytes:
            raise ValueError(f"object {index} encodes to {size} bytes, over the {max_bytes} limit")
        added = size + (_SEPARATOR_BYTES if current else 0)
        if current and (len(current) == max_objects or current_bytes + added > max_bytes):
            batches.append(current)
            current, current_bytes, added = [], _ENVELOPE_BYTES, size
        current.append(obj)
        current_bytes += added
    if current:
        batches.append(current)
    return batches
