"""Hypothesis strategies shared by the property tests: JSON values and Voucherify envelopes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from app.distributions.triggers import KNOWN_TRIGGERS

# Strings that stress whitespace handling and escaping: spaces, quotes, backslashes, any Unicode.
tricky_text = st.text(
    st.sampled_from(' \t\n"\\{}[]:,ab') | st.characters(codec="utf-8"), max_size=20
)
# orjson reads integers up to 64 bits exactly (larger ones become floats), as Voucherify sends.
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
)


def json_values(max_leaves: int = 20) -> st.SearchStrategy[Any]:
    """Any JSON document (what `json.loads` can return)."""
    return st.recursive(
        scalars | tricky_text,
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(tricky_text, children, max_size=4)
        ),
        max_leaves=max_leaves,
    )


def json_objects() -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(tricky_text, json_values(5), max_size=3)


# Ids and names as Voucherify could send them: any Unicode but NUL (which Postgres text refuses).
identifiers = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=100
)
# Any UTC offset to the minute (fixed offsets: IANA zones cost a file read per zone drawn).
zones = st.integers(-1439, 1439).map(lambda minutes: timezone(timedelta(minutes=minutes)))
# Any instant a webhook can carry, in any zone (years 1 and 9999 overflow UTC in some zones).
timestamps = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(9998, 12, 30), timezones=zones
).map(lambda d: d.isoformat())
event_types = st.sampled_from(sorted(KNOWN_TRIGGERS)) | identifiers


@st.composite
def envelopes(draw: st.DrawFn) -> dict[str, Any]:
    """A Voucherify v2024-01-01 envelope (reference 1.1) with arbitrary extra fields."""
    body: dict[str, Any] = draw(json_objects())
    for legacy in ("object", "webhook_id"):
        body.pop(legacy, None)
    customer = {"id": draw(identifiers), "source_id": draw(identifiers)}
    body.update(
        {
            "id": "whs_" + draw(st.text("abcdef0123456789", min_size=1, max_size=24)),
            "project_id": "proj_" + draw(st.text("abcdef0123456789", min_size=1, max_size=24)),
            "created_at": draw(timestamps),
            "type": draw(identifiers),
            "source": {"object": draw(st.sampled_from(["webhook", "distribution"])),
                       "id": draw(identifiers)},
            "event": {"id": draw(identifiers), "type": draw(event_types),
                      "created_at": draw(timestamps), "entity_id": draw(identifiers)},
            "data": {**draw(json_objects()), "customer": customer,
                     "voucher": {"code": draw(identifiers), "expiration_date": draw(timestamps)}},
        }
    )  # fmt: skip
    return body


# Values that have broken parsers elsewhere: numbers in text, Unicode digits, special decimals,
# dates at the edges of the calendar, long text.
EDGE_STRINGS = (
    "", " ", "0", "-0", "1", "-1", "007", "1.0", "1e3", "1e999", "-1e999", "Infinity", "-Infinity",
    "NaN", "sNaN", "-sNaN", "²", "\u0661\u0662\u0663", "\u0663.\u0665", "true", "FALSE",
    " yes ", "off", "null",
    "2026-12-31T22:59:59.000Z", "2026-12-31", "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00", "2026-02-30", "24:00", "x" * 256, "é" * 255,
)  # fmt: skip
edge_values = (
    st.sampled_from(EDGE_STRINGS)
    | scalars
    | st.integers()
    | st.text(max_size=30)
    | st.datetimes(timezones=zones).map(lambda d: d.isoformat())
    | json_values(4)
)


# Source paths (`voucher.code`, `vouchers[0].gift.balance`) as (text, steps) pairs.
_names = st.text("abcdefghijklmnopqrstuvwxyzA_", min_size=1, max_size=3) | st.sampled_from(
    ["voucher", "customer", "code", "metadata", "source_id", "data", "event", "type"]
)
_segments = st.tuples(_names, st.lists(st.integers(0, 3), max_size=2))


@st.composite
def source_paths(draw: st.DrawFn) -> tuple[str, tuple[str | int, ...]]:
    path = draw(st.lists(_segments, min_size=1, max_size=5))
    text = ".".join(name + "".join(f"[{i}]" for i in indexes) for name, indexes in path)
    steps: tuple[str | int, ...] = ()
    for name, indexes in path:
        steps += (name, *indexes)
    return text, steps
