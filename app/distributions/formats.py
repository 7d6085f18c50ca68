"""Value formats for Braze attributes. Each raises FormatError rather than guess or truncate."""

from __future__ import annotations

import contextlib
import math
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any


class FormatError(ValueError):
    pass


# orjson, which encodes the Braze bodies, writes integers of at most 64 bits.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")


def parse_datetime(value: Any) -> datetime:
    """An ISO-8601 string as an aware UTC datetime (no zone: UTC); FormatError otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise FormatError(f"expected an ISO-8601 date string, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise FormatError(f"{value!r} is not an ISO-8601 date") from None
    # A date without a zone is taken as UTC, as Braze does.
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+02:00 is before year 1 in UTC
        raise FormatError(f"{value!r} is outside the years 1 to 9999 in UTC") from None


# Braze stores a date after the year 3000 as a string, not a time: a date attribute would
# then change type (and segments on it stop matching).
BRAZE_LAST_YEAR = 3000


def _braze_datetime(value: Any) -> datetime:
    parsed = parse_datetime(value)
    if parsed.year > BRAZE_LAST_YEAR:
        raise FormatError(
            f"{value!r} is after the year 3000, which Braze keeps as text, not a date"
        )
    return parsed


def iso_datetime(value: Any) -> str:
    """ISO-8601 in UTC with milliseconds, e.g. 2026-12-31T22:59:59.000Z."""
    return _braze_datetime(value).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def date(value: Any) -> str:
    """The calendar day in UTC (a time late in the evening west of UTC is the next day)."""
    return _braze_datetime(value).date().isoformat()


def minor_units_to_decimal(value: Any) -> float:
    """1000 (minor units, cents) -> 10.0; Voucherify sends every amount this way."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise FormatError(f"expected an amount in minor units, got {value!r}")
    if isinstance(value, str) and not _WHOLE_NUMBER.fullmatch(value.strip()):
        # Decimal would read "1e3" or "1_000" as 1000: not how Voucherify writes amounts.
        raise FormatError(f"{value!r} is not a whole number of minor units")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise FormatError(f"{value!r} is not an amount") from None
    # NaN and Infinity parse as Decimals (sNaN even raises when compared): not amounts.
    if not amount.is_finite() or amount != amount.to_integral_value():
        raise FormatError(f"{value!r} is not a whole number of minor units")
    decimal = float(amount / 100)
    if not math.isfinite(decimal):
        raise FormatError(f"{value!r} is too large for an amount")
    return decimal


def integer(value: Any) -> int:
    if isinstance(value, bool):
        raise FormatError(f"expected an integer, got {value!r}")
    number: int | None = None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        with contextlib.suppress(ValueError):  # "²" and "--1" pass isdigit() but are no int
            number = int(value.strip())
    if number is None:
        raise FormatError(f"{value!r} is not an integer")
    if not INT64_MIN <= number <= INT64_MAX:
        raise FormatError(f"{value!r} is outside the 64-bit range Braze bodies are encoded in")
    return number


_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise FormatError(f"{value!r} is not a boolean")


def string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise FormatError(f"expected a scalar to turn into a string, got {type(value).__name__}")


def raw(value: Any) -> Any:
    return value


FORMATTERS = {
    "raw": raw,
    "string": string,
    "iso_datetime": iso_datetime,
    "date": date,
    "minor_units_to_decimal": minor_units_to_decimal,
    "integer": integer,
    "boolean": boolean,
}


def apply_format(name: str, value: Any) -> Any:
    """Format a present value; null stays null (it unsets the attribute in Braze)."""
    return None if value is None else FORMATTERS[name](value)
