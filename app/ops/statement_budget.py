"""Ops reads, bulk replay plans and counts run under OPS_STATEMENT_TIMEOUT_SECONDS: a filter
no index serves quickly on a large history (a wide window with nothing else) is answered with
503 `filter_too_slow` naming what narrows it, instead of holding a connection and a CPU for
minutes while the client has long given up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import VoucherRelayError

QUERY_CANCELED = "57014"


class FilterTooSlowError(VoucherRelayError):
    status_code = 503
    code = "filter_too_slow"


@asynccontextmanager
async def bounded(session: AsyncSession, seconds: float, *, narrow: str) -> AsyncIterator[None]:
    """Run the statements inside under a statement timeout of `seconds`; past it,
    FilterTooSlowError saying to narrow the filter by `narrow`."""
    await session.execute(text(f"SET LOCAL statement_timeout = {max(1, round(seconds * 1000))}"))
    try:
        yield
        # The rest of the transaction (recording a replay, its inline batches) is not bounded.
        await session.execute(text("SET LOCAL statement_timeout TO DEFAULT"))
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) != QUERY_CANCELED:
            raise
        raise FilterTooSlowError(
            f"this filter could not be served within OPS_STATEMENT_TIMEOUT_SECONDS "
            f"({seconds:g} s): narrow it with {narrow}"
        ) from None
