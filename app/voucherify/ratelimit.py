"""The client's own share of Voucherify's request budget, awaited before every call.

Voucherify counts requests per minute per project (Business plan: 100, reference §2.2) and
answers 429 as soon as the limit is exceeded, so we hold ourselves to the budget rather than
learn it from 429s. In-process only: each process gets its own budget, so
several workers should split the project's limit between them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class RateBudget:
    """At most `requests` calls start in any `window_seconds` (a sliding log of start times,
    stricter than Voucherify's window however it is aligned), and none before a time set by
    `block_until` (a 429's "come back at")."""

    def __init__(
        self,
        *,
        requests: int,
        window_seconds: float = 60.0,
        clock: Clock,
        sleep: Sleep,
    ) -> None:
        if requests < 1:
            raise ValueError("the budget must allow at least one request")
        if window_seconds <= 0:
            raise ValueError("window_seconds must be positive")
        self.requests = requests
        self.window_seconds = window_seconds
        self._clock = clock
        self._sleep = sleep
        self._starts: deque[float] = deque(maxlen=requests)
        self._blocked_until = 0.0
        # Waiters queue on the lock, so they are served in arrival order.
        self._lock = asyncio.Lock()

    async def acquire(self) -> float:
        """Wait until one more call fits the budget, count it, and say how long we waited."""
        waited = 0.0
        async with self._lock:
            while (wait := self._wait(self._clock())) > 0:
                await self._sleep(wait)
                waited += wait
            self._starts.append(self._clock())
        return waited

    def block_until(self, when: float) -> None:
        """Let no call start before `when` (clock seconds); an earlier `when` changes nothing."""
        self._blocked_until = max(self._blocked_until, when)

    def blocked_for(self) -> float:
        """Seconds until calls may start again after a 429 (0 when they may now)."""
        return max(self._blocked_until - self._clock(), 0.0)

    def _wait(self, now: float) -> float:
        wait = self._blocked_until - now
        if len(self._starts) == self.requests:
            # The oldest of the last `requests` starts must leave the window first.
            wait = max(wait, self._starts[0] + self.window_seconds - now)
        return max(wait, 0.0)
