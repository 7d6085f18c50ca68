"""The test suite's Postgres: an embedded server in a temp dir, or TEST_DATABASE_URL's server.

Either way each pytest session works in scratch databases it creates and drops, so pointing
TEST_DATABASE_URL at a shared server never touches the data already there.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
from sqlalchemy.engine import URL

from app.config import parse_database_url
from app.db.embedded import EmbeddedPostgres


@contextmanager
def provide_server(tmp_dir: Path) -> Iterator[URL]:
    """Yield the URL of a server the tests may create databases on; stop it afterwards."""
    configured = os.environ.get("TEST_DATABASE_URL", "").strip()
    if configured:
        yield parse_database_url(configured)
        return
    server = EmbeddedPostgres(tmp_dir)
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


def _connect_kwargs(url: URL) -> dict[str, object]:
    return {
        "host": url.query.get("host") or url.host,
        "port": url.port,
        "user": url.username,
        "password": url.password,
        "database": url.database,
    }


async def _admin(url: URL, sql: str) -> None:
    connection = await asyncpg.connect(**_connect_kwargs(url))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@contextmanager
def scratch_database(server_url: URL, prefix: str = "vr_test") -> Iterator[URL]:
    """Create an empty database on the server, yield its URL, drop it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
    try:
        yield server_url.set(database=name)
    finally:
        asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
