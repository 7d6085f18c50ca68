from __future__ import annotations

from typing import Any

import pytest

from app.distributions.formats import FormatError, apply_format


@pytest.mark.parametrize(
    ("fmt", "value", "expected"),
    [
        ("raw", {"a": 1}, {"a": 1}),
        ("string", 42, "42"),
        ("string", True, "true"),
        ("iso_datetime", "2026-12-31T22:59:59.000Z", "2026-12-31T22:59:59.000Z"),
        ("iso_datetime", "2026-12-31T23:59:59+01:00", "2026-12-31T22:59:59.000Z"),
        ("iso_datetime", "2026-12-31", "2026-12-31T00:00:00.000Z"),
        ("date", "2026-12-31T23:30:00-02:00", "2027-01-01"),
        ("minor_units_to_decimal", 1000, 10.0),
        ("minor_units_to_decimal", 1999, 19.99),
        ("minor_units_to_decimal", "250", 2.5),
        ("integer", 1040, 1040),
        ("integer", "12", 12),
        ("integer", 3.0, 3),
        ("boolean", True, True),
        ("boolean", "yes", True),
        ("boolean", 0, False),
    ],
)
def test_formats_convert_values(fmt: str, value: Any, expected: Any) -> None:
    assert apply_format(fmt, value) == expected


@pytest.mark.parametrize(
    "fmt", ["raw", "string", "iso_datetime", "minor_units_to_decimal", "integer"]
)
def test_null_stays_null(fmt: str) -> None:
    assert apply_format(fmt, None) is None


@pytest.mark.parametrize(
    ("fmt", "value"),
    [
        ("iso_datetime", "31/12/2026"),
        ("iso_datetime", 1735689600),
        ("date", ""),
        ("minor_units_to_decimal", 10.5),
        ("minor_units_to_decimal", True),
        ("integer", 2.5),
        ("integer", "twelve"),
        ("boolean", "maybe"),
        ("string", {"nested": True}),
        # Found by the property tests: these raised other errors, or gave infinity.
        ("integer", "²"),
        ("integer", "--1"),
        ("integer", 2**63),
        ("minor_units_to_decimal", "sNaN"),
        ("minor_units_to_decimal", "Infinity"),
        ("minor_units_to_decimal", "1e999"),
        ("iso_datetime", "0001-01-01T00:00:00+01:00"),
        ("date", "9999-12-31T23:59:59-01:00"),
        # Braze keeps a year after 3000 as text, not a date.
        ("iso_datetime", "3001-01-01T00:00:00Z"),
        ("date", "9999-12-31"),
        # Decimal reads these as 1000; Voucherify writes amounts as plain whole numbers.
        ("minor_units_to_decimal", "1e3"),
        ("minor_units_to_decimal", "1_000"),
    ],
)
def test_values_that_do_not_fit_the_format_are_refused(fmt: str, value: Any) -> None:
    with pytest.raises(FormatError):
        apply_format(fmt, value)
