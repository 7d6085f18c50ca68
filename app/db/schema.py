"""Is the database's schema the one this code was written for? Read from alembic's own table
and the revisions shipped beside the code; `/readyz`, `serve` and the worker ask."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from functools import lru_cache

from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from app.db.migrate import alembic_config

logger = logging.getLogger(__name__)

MIGRATE_COMMAND = "voucher-relay migrate"
# How often a waiting worker looks again: rarely enough to stay quiet, often enough that it
# starts within seconds of `migrate`.
WAIT_POLL_SECONDS = 5.0


@dataclass(frozen=True)
class Revisions:
    head: str
    known: frozenset[str]


@lru_cache
def code_revisions() -> Revisions:
    """The newest revision the code ships (`head`) and every revision it knows."""
    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    assert head is not None, "migrations/ has one head"
    return Revisions(head=head, known=frozenset(rev.revision for rev in script.walk_revisions()))


@dataclass(frozen=True)
class SchemaState:
    """What the database holds against what the code needs; `problem` is None when current."""

    revision: str | None
    head: str
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.problem is None


def judge(revision: str | None, revisions: Revisions) -> SchemaState:
    """A database at the code's head is current. One at a revision the code does not know was
    migrated by a newer release (a rolling upgrade runs `migrate` before the old processes stop,
    and migrations only add): those old processes keep serving."""
    head = revisions.head
    if revision is None:
        problem = f"the database schema is not migrated (this code needs revision {head})"
    elif revision == head or revision not in revisions.known:
        problem = None
    else:
        problem = f"the database schema is at revision {revision}, this code needs {head}"
    if problem is not None:
        problem += f": run `{MIGRATE_COMMAND}` (or `voucher-relay serve --migrate`)"
    return SchemaState(revision=revision, head=head, problem=problem)


async def database_revision(connection: AsyncConnection) -> str | None:
    """The revision alembic recorded, or None in a database it never migrated."""
    exists = await connection.scalar(text("SELECT to_regclass('alembic_version') IS NOT NULL"))
    if not exists:
        return None
    revision = await connection.scalar(text("SELECT version_num FROM alembic_version LIMIT 1"))
    return str(revision) if revision is not None else None


async def schema_state(engine: AsyncEngine) -> SchemaState:
    async with engine.connect() as connection:
        return judge(await database_revision(connection), code_revisions())


def read_revision(url: URL) -> str | None:
    """The database's revision, from synchronous code (the commands, around a migration)."""

    async def read() -> str | None:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                return await database_revision(connection)
        finally:
            await engine.dispose()

    return asyncio.run(read())


async def wait_until_current(
    engine: AsyncEngine, stop: asyncio.Event, *, announce: bool = True
) -> bool:
    """Return True once the schema is current (at once, usually), False if `stop` came first.
    While waiting it logs one line when it starts (unless the caller said it already:
    `announce=False`) and one when the schema is there; database errors meanwhile are the
    readiness check's to report, not a log line every few seconds."""
    said: str | None = None
    while not stop.is_set():
        try:
            state = await schema_state(engine)
        except Exception as exc:  # Postgres down or refusing: /readyz says so; look again later
            state = SchemaState(None, code_revisions().head, f"the database: {exc}")
        if state.ok:
            if said is not None:
                logger.info("database schema at revision %s: the worker starts", state.revision)
            return True
        if said is None:
            if announce:
                logger.warning("the worker waits: %s", state.problem)
            said = state.problem or ""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), WAIT_POLL_SECONDS)
    return False
