"""Failures in a row of one worker lane (Postgres down, say): wait longer after each, and log
the traceback once per streak rather than on every poll."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from app.delivery.stopping import unless_stopped, wait_unless_stopped
from app.errors import short_error

LONGEST_WAIT_SECONDS = 30.0


class FailureStreak:
    """One lane's failures in a row. `failed()` logs and says how long to wait before the next
    try: the poll interval after the first failure, doubling up to `longest` seconds. Only the
    first failure of a streak is logged with its traceback; each later one gets a short line.
    `succeeded()` ends the streak with one INFO line."""

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        *,
        first_wait: float,
        longest: float = LONGEST_WAIT_SECONDS,
    ) -> None:
        """`what` names the lane's work in the log lines: "worker cycle", "publishing", ..."""
        self.logger = logger
        self.what = what
        self.first_wait = first_wait
        self.longest = max(longest, first_wait)
        self.failures = 0

    def wait_seconds(self) -> float:
        """How long to wait after the current number of failures in a row."""
        if self.failures == 0:
            return self.first_wait
        doubled: float = self.first_wait * 2.0 ** min(self.failures - 1, 32)
        return min(doubled, self.longest)

    def failed(self, exc: BaseException, consequence: str = "") -> float:
        """Log this failure (call it in the `except` block); returns the seconds to wait."""
        self.failures += 1
        wait = self.wait_seconds()
        fields = {"failures_in_a_row": self.failures, "next_try_seconds": round(wait, 3)}
        if self.failures == 1:
            tail = f"; {consequence}" if consequence else ""
            self.logger.error(
                "%s failed%s; next try in %g s", self.what, tail, wait, exc_info=exc,
                extra=fields,
            )  # fmt: skip
        else:
            self.logger.error(
                "%s failed again (%d in a row): %s; next try in %g s",
                self.what, self.failures, short_error(exc), wait, extra=fields,
            )  # fmt: skip
        return wait

    def succeeded(self) -> None:
        """The lane works again: log the recovery once and start counting afresh."""
        if self.failures:
            self.logger.info(
                "%s works again after %d failures in a row", self.what, self.failures,
                extra={"failures_in_a_row": self.failures},
            )  # fmt: skip
            self.failures = 0


async def poll_until_stopped(
    stop: asyncio.Event,
    work: Callable[[], Awaitable[bool]],
    *,
    streak: FailureStreak,
    idle_wait: float,
    consequence: str = "",
) -> None:
    """A lane's loop: call `work` until `stop` is set (work in progress then is canceled);
    again at once while it finds work (it returns True), after `idle_wait` when it does not,
    and after the streak's growing wait when it raises (`consequence` says what becomes of the
    work meanwhile)."""
    while not stop.is_set():
        try:
            busy = await unless_stopped(stop, work())
        except Exception as exc:
            await wait_unless_stopped(stop, streak.failed(exc, consequence))
            continue
        if stop.is_set():
            return
        streak.succeeded()
        if not busy:
            await wait_unless_stopped(stop, idle_wait)
