"""Shared pieces of the raw asyncpg pools (the webhook inbox and the delivery worker)."""

from __future__ import annotations

import asyncpg


async def keep_session(connection: asyncpg.Connection) -> None:
    """A pool `reset=` that skips asyncpg's reset query (advisory unlock, CLOSE ALL, UNLISTEN,
    RESET ALL) on every release: a round trip each time. Safe because these pools never leave
    session state behind: settings are `SET LOCAL` or startup parameters, locks are per
    transaction, nothing LISTENs. asyncpg still rolls back a transaction left open."""


# Errors a row's own values cause (a value Postgres cannot take, a key over an index's limit):
# retrying the same row fails the same way, so the writer settles it otherwise, with the reason.
DATA_ERRORS = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.ProgramLimitExceededError,
)
