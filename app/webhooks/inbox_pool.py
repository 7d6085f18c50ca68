"""The inbox's own asyncpg pool (intake's hot path skips the ORM), and the errors that mean the
database is not there right now."""

from __future__ import annotations

import json

import asyncpg
from sqlalchemy.engine import URL

from app.db.raw import keep_session

# Errors that mean "the database is not there right now": answer 503 so Voucherify retries.
CONNECTION_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.TooManyConnectionsError,
    # A connection the server cut (fast shutdown) while idle in the pool can fail its next
    # statement with this instead of a connection error (seen by `make soak`).
    asyncpg.exceptions.InternalClientError,
)


def create_pool(url: URL, *, size: int, connect_timeout: float) -> asyncpg.Pool:
    """A pool that connects on first use; jsonb comes back as Python objects."""
    return asyncpg.create_pool(
        host=url.query.get("host") or url.host,
        port=url.port,
        user=url.username,
        password=url.password,
        database=url.database,
        min_size=0,
        max_size=size,
        timeout=connect_timeout,
        init=_init_connection,
        reset=keep_session,
    )


async def _init_connection(connection: asyncpg.Connection) -> None:
    # jsonb columns come back as Python objects, as they do through SQLAlchemy.
    await connection.set_type_codec("jsonb", encoder=str, decoder=json.loads, schema="pg_catalog")
