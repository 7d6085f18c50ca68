"""The ids, times and pages a client sends to the ops API, bounded once for every router and
every replay body: past a bound the answer is 422 naming it, never a 500 from Postgres (an id
over its bigint) or from Python (a time whose UTC value falls outside years 1 to 9999)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from annotated_types import Interval
from fastapi import Path, Query
from pydantic import AfterValidator, BeforeValidator

# Row ids are Postgres bigints.
BIGINT_MAX = 2**63 - 1
# The widest span that both Python and Postgres hold once converted to UTC: a time such as
# 0001-01-01T00:00:00+14:00 parses, but is in year 0 in UTC (and 9999-12-31T23:59:59-14:00 in
# year 10000), which every comparison with a stored time needs.
EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
TIME_BOUND = f"between {EARLIEST.isoformat()} and {LATEST.isoformat()}"


def bounded_time(moment: datetime) -> datetime:
    """`moment`, read as UTC when it has no zone (as everywhere in this API); ValueError naming
    the bound when its UTC value is outside [EARLIEST, LATEST]."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        inside = EARLIEST <= moment.astimezone(UTC) <= LATEST
    except OverflowError:  # year 0 or 10000 in UTC
        inside = False
    if not inside:
        raise ValueError(f"a time must be {TIME_BOUND} (in UTC); got {moment.isoformat()}")
    return moment


def iso_text(value: object) -> object:
    """Refuse a number where a time is expected: pydantic would read it as Unix seconds, so
    that ?since=2026 (a year, meant) would be 1970-01-01T00:33:46Z."""
    text = value.strip() if isinstance(value, str) else value
    if isinstance(text, int | float) or (isinstance(text, str) and _is_number(text)):
        raise ValueError(f"a time must be ISO-8601 (e.g. 2026-03-10T09:00:00Z), not {value!r}")
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


RowIdValue = Annotated[int, Interval(ge=1, le=BIGINT_MAX)]
Moment = Annotated[datetime, BeforeValidator(iso_text), AfterValidator(bounded_time)]

RowId = Annotated[RowIdValue, Path(description="a row id")]
RowIdFilter = Annotated[RowIdValue | None, Query()]
Since = Annotated[
    Moment | None, Query(description=f"from this time (inclusive, ISO-8601; UTC without a zone; "
                         f"{TIME_BOUND})"),
]  # fmt: skip
Until = Annotated[
    Moment | None, Query(description=f"until this time (exclusive, ISO-8601; UTC without a zone; "
                         f"{TIME_BOUND})"),
]  # fmt: skip
Limit = Annotated[int, Query(ge=1, le=500, description="rows per page")]
Cursor = Annotated[str | None, Query(description="next_cursor of the previous page")]
