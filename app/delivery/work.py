"""What a worker is told (WorkerConfig), what one lane holds between its claim and its send
(Work), and what it counts (WorkerStats)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from app.delivery import coalesce
from app.delivery.store.queue import Claimed
from app.retry import DEFAULT_SCHEDULE


@dataclass(frozen=True)
class WorkerConfig:
    batch_size: int = 75
    concurrency: int = 4
    poll_seconds: float = 0.5
    lease: timedelta = timedelta(seconds=120)
    schedule: tuple[timedelta, ...] = DEFAULT_SCHEDULE
    # Pause everyone when Braze says fewer than this share of the window's requests remain.
    low_remaining_fraction: float = 0.05
    # How long a value Braze accepted is trusted to be still there (None: for ever).
    trust: timedelta | None = timedelta(days=7)


@dataclass(frozen=True)
class Work:
    """A claimed batch, coalesced: what one lane sends next."""

    claimed: Claimed
    plan: coalesce.Plan
    probing: bool
    # When the leases were taken (event-loop clock): a prefetched batch waits for the one
    # before it, and must not start a send its lease cannot cover.
    claimed_at: float = field(default_factory=lambda: asyncio.get_running_loop().time())
    # An outage probe: the retry tried early, and the retry time it goes back to if it fails.
    retry_probe: dict[int, datetime] = field(default_factory=dict)

    @property
    def delivery_ids(self) -> list[int]:
        return [d.id for d in self.claimed.deliveries]


@dataclass
class WorkerStats:
    delivered: int = 0
    failed: int = 0
    retried: int = 0
    skipped: int = 0
    requests: int = 0
    data_points_saved: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
