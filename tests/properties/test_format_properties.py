"""Properties of the attribute formats (app/distributions/formats.py) and source paths
(app/distributions/paths.py): total on any JSON, idempotent where a format is a normal form."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import assume, given
from hypothesis import strategies as st

from app.distributions import formats
from app.distributions.paths import MAX_PATH_LENGTH, MISSING, check_path, lookup, split_path
from app.distributions.schemas import FORMATS
from tests.properties.strategies import EDGE_STRINGS, edge_values, json_values, source_paths, zones

ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
RESULT_TYPES: dict[str, type] = {
    "string": str, "iso_datetime": str, "date": str, "minor_units_to_decimal": float,
    "integer": int, "boolean": bool,
}  # fmt: skip


def formatted_or_none(name: str, value: Any) -> Any:
    """The formatted value, or None when the format refuses it (FormatError, nothing else)."""
    try:
        return formats.apply_format(name, value)
    except formats.FormatError as exc:
        assert str(exc)
        return None


def assert_formats_to_its_type_or_refuses(value: Any, name: str) -> None:
    formatted = formatted_or_none(name, value)
    if formatted is None or name == "raw":
        return
    assert type(formatted) is RESULT_TYPES[name], (value, formatted)
    if isinstance(formatted, float):
        assert math.isfinite(formatted), "Braze (and JSON) take no NaN or infinity"
    if isinstance(formatted, int):
        assert formats.INT64_MIN <= formatted <= formats.INT64_MAX, "orjson writes 64 bits"


@given(value=edge_values, name=st.sampled_from(FORMATS))
def test_every_format_returns_its_type_or_refuses_with_a_format_error(
    value: Any, name: str
) -> None:
    assert_formats_to_its_type_or_refuses(value, name)


@given(value=st.sampled_from(EDGE_STRINGS), name=st.sampled_from(FORMATS))
def test_every_format_handles_the_known_troublemakers(value: str, name: str) -> None:
    # The generic strategy meets these rarely; this small space Hypothesis walks completely.
    assert_formats_to_its_type_or_refuses(value, name)


@given(name=st.sampled_from(FORMATS))
def test_null_stays_null_in_every_format(name: str) -> None:
    assert formats.apply_format(name, None) is None


@given(value=edge_values, name=st.sampled_from(["string", "iso_datetime", "date", "integer",
                                                 "boolean", "raw"]))  # fmt: skip
def test_normal_forms_are_idempotent(value: Any, name: str) -> None:
    once = formatted_or_none(name, value)
    assume(once is not None)
    assert formats.apply_format(name, once) == once


# Up to the year 3000 in every zone (Braze keeps later years as text: refused, tested apart).
@given(
    moment=st.datetimes(max_value=datetime(2999, 12, 30), timezones=zones),
    separator=st.sampled_from(["T", " "]),
)
def test_iso_datetime_keeps_the_instant_to_the_millisecond_in_utc(
    moment: datetime, separator: str
) -> None:
    text = moment.isoformat(sep=separator)
    formatted = formatted_or_none("iso_datetime", text)
    utc = moment.astimezone(UTC) if 1 < moment.year < 9999 else None
    if utc is None and formatted is None:
        return  # at the calendar's edge a zone can push the instant out of range: refused
    assert formatted is not None and ISO_DATETIME.match(formatted), formatted
    back = datetime.fromisoformat(formatted.replace("Z", "+00:00"))
    assert timedelta(0) <= moment - back < timedelta(milliseconds=1)
    assert formats.date(text) == formats.date(formatted) == formatted[:10]


@given(amount=st.integers(-(10**15), 10**15), as_text=st.booleans())
def test_minor_units_divide_by_a_hundred(amount: int, as_text: bool) -> None:
    decimal = formats.minor_units_to_decimal(str(amount) if as_text else amount)
    assert math.isclose(decimal, amount / 100) and round(decimal * 100) == amount


@given(number=st.integers(), padding=st.sampled_from(["", " ", "\t"]))
def test_integers_written_as_text_read_back_within_64_bits(number: int, padding: str) -> None:
    if not formats.INT64_MIN <= number <= formats.INT64_MAX:
        assert formatted_or_none("integer", str(number)) is None
        return
    assert formats.integer(f"{padding}{number}{padding}") == number
    assert formats.integer(float(number) if abs(number) < 2**53 else number) == number


@given(flag=st.booleans())
def test_booleans_survive_the_string_format(flag: bool) -> None:
    assert formats.boolean(formats.string(flag)) is flag


# Source paths.
def plant(steps: tuple[str | int, ...], value: Any) -> Any:
    """A document holding `value` at `steps` (lists padded with nulls)."""
    if not steps:
        return value
    head, rest = steps[0], steps[1:]
    if isinstance(head, int):
        return [None] * head + [plant(rest, value)]
    return {head: plant(rest, value)}


@given(path=source_paths(), value=json_values(5))
def test_a_value_planted_at_a_path_is_found_there(
    path: tuple[str, tuple[str | int, ...]], value: Any
) -> None:
    text, steps = path
    assume(len(text) <= MAX_PATH_LENGTH)
    assert check_path(text) == text and split_path(text) == steps
    assert lookup(plant(steps, value), text) == value


@given(path=source_paths(), document=json_values())
def test_lookup_never_raises_and_finds_only_what_is_there(
    path: tuple[str, tuple[str | int, ...]], document: Any
) -> None:
    text, steps = path
    found = lookup(document, text)
    if found is MISSING:
        return
    current = document
    for step in steps:  # the same walk, written out: every step existed
        assert isinstance(current, list if isinstance(step, int) else dict)
        current = current[step]  # type: ignore[index]
    assert found is current


@given(text=st.text(max_size=40) | st.from_regex(r"[a-z.\[\]0-9_]{0,40}", fullmatch=True))
def test_check_path_accepts_or_refuses_with_a_value_error(text: str) -> None:
    try:
        checked = check_path(text)
    except ValueError as exc:
        assert "not a source path" in str(exc)
        return
    assert checked == text and split_path(text)
