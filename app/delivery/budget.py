"""Time budgets of the worker's statements: each is timed, and one that runs past the worker
connections' `statement_timeout` (WORKER_STATEMENT_TIMEOUT_SECONDS) is canceled by Postgres,
counted and logged by name. A claim stuck in a bad plan or behind a lock then fails loudly
within seconds, releasing its locks, and its lane carries on with the next cycle, instead of
stalling delivery in silence for minutes."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from app.metrics.registry import count_statement_timeout, observe_statement

logger = logging.getLogger(__name__)


class StatementTimeoutError(Exception):
    """A worker statement was canceled for running past its budget."""

    def __init__(self, statement: str, seconds: float) -> None:
        super().__init__(f"{statement} canceled after {seconds:.1f} s (statement timeout)")
        self.statement = statement


@asynccontextmanager
async def timed(statement: str) -> AsyncIterator[None]:
    """Time the statement(s) run inside under `statement`'s name; turn a statement timeout
    into one ERROR line naming it and a StatementTimeoutError."""
    started = time.perf_counter()
    try:
        yield
    except asyncpg.QueryCanceledError as exc:
        seconds = time.perf_counter() - started
        count_statement_timeout(statement)
        logger.error(
            "worker statement %s ran %.1f s, past WORKER_STATEMENT_TIMEOUT_SECONDS, and was "
            "canceled; its transaction is rolled back and the lane tries again",
            statement, seconds, extra={"statement": statement},
        )  # fmt: skip
        raise StatementTimeoutError(statement, seconds) from exc
    observe_statement(statement, time.perf_counter() - started)
