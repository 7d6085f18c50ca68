"""What `serve`, `worker` and `migrate` do before anything else: find and check the database."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
from sqlalchemy.engine import URL

from app.config import Settings, parse_database_url
from app.db.embedded import EmbeddedPostgres
from app.errors import ConfigError

logger = logging.getLogger(__name__)


@contextmanager
def provide_database(settings: Settings) -> Iterator[tuple[URL, bool]]:
    """Yield (url, embedded): DATABASE_URL when set, else an embedded Postgres we start and stop."""
    if settings.database_url is not None:
        yield parse_database_url(settings.database_url.get_secret_value()), False
        return
    server = EmbeddedPostgres(settings.data_dir)
    url = server.start()
    logger.info("embedded Postgres ready in %s", server.pgdata)
    try:
        yield url, True
    finally:
        # A server another process started (`serve`, say) stays up for it: say so, not "stopped".
        owned = server.owned
        server.stop()
        if owned:
            logger.info("embedded Postgres stopped")
        else:
            logger.info("embedded Postgres left running for the process that started it")


def check_reachable(url: URL, *, timeout: float) -> None:
    """Connect once; a failure becomes one ConfigError line that names DATABASE_URL."""
    try:
        asyncio.run(_connect_once(url, connect_timeout=timeout))
    except (OSError, TimeoutError, asyncpg.PostgresError, socket.gaierror) as exc:
        where = url.render_as_string(hide_password=True).replace("postgresql+asyncpg", "postgresql")
        reason = str(exc).strip() or type(exc).__name__
        raise ConfigError(f"DATABASE_URL: cannot connect to {where}: {reason}") from exc


async def _connect_once(url: URL, *, connect_timeout: float) -> None:
    connection = await asyncpg.connect(
        host=url.query.get("host") or url.host,
        port=url.port,
        user=url.username,
        password=url.password,
        database=url.database,
        timeout=connect_timeout,
    )
    await connection.close()
