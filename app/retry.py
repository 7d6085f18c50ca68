"""When a delivery that Braze did not take is tried again: the whole schedule in one function.

Like Voucherify's own webhooks (12 tries over 24 h), a delivery gets one first attempt and 11
retries spread over about a day, from seconds (a blip) to hours (an outage), so that a Braze
incident of up to a day loses nothing.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from datetime import timedelta

DEFAULT_SCHEDULE: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=2),
    timedelta(hours=4),
    timedelta(hours=8),
    timedelta(hours=8),
)  # 23 h 52 min 35 s in all
# Spreads the retries of deliveries that failed together (one Braze outage) over time.
DEFAULT_JITTER = 0.1

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_STEP = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd]?)$")
_DEFAULT_RNG = random.Random()


def jitter_factor(jitter: float = DEFAULT_JITTER, rng: random.Random | None = None) -> float:
    """A uniform factor in [1 - jitter, 1 + jitter]."""
    if not 0 <= jitter < 1:
        raise ValueError("jitter must be within [0, 1)")
    return 1 + (rng or _DEFAULT_RNG).uniform(-jitter, jitter)


def retry_delay(
    *,
    attempt: int,
    schedule: Sequence[timedelta] = DEFAULT_SCHEDULE,
    jitter: float = DEFAULT_JITTER,
    rng: random.Random | None = None,
    factor: float | None = None,
) -> timedelta | None:
    """How long to wait after failed attempt number `attempt` (1 = the first try), or None when
    the schedule is spent and the delivery is dead.

    The wait is the schedule's entry scaled by `factor`, drawn by `jitter_factor` when not given.
    A caller settling several deliveries that failed in one request passes one factor for all,
    so they stay due together and go out again in one request.
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    if factor is None:
        factor = jitter_factor(jitter, rng)
    if attempt > len(schedule):
        return None
    return schedule[attempt - 1] * factor


def parse_schedule(text: str) -> tuple[timedelta, ...]:
    """The schedule written as comma separated steps such as "5s,30s,2m,1h,1d" (a bare number is
    seconds). Raises ValueError naming the step that is not a positive duration."""
    steps: list[timedelta] = []
    for raw in text.split(","):
        step = raw.strip().lower()
        match = _STEP.match(step)
        if match is None or float(match[1]) <= 0:
            raise ValueError(
                f"retry schedule step {raw.strip()!r} is not a duration like 30s or 2m"
            )
        steps.append(timedelta(seconds=float(match[1]) * _UNITS[match[2] or "s"]))
    return tuple(steps)


def format_schedule(schedule: Sequence[timedelta]) -> str:
    """The schedule in the form `parse_schedule` reads, in the largest whole unit of each step."""
    parts: list[str] = []
    for step in schedule:
        seconds = step.total_seconds()
        unit = next((u for u in ("d", "h", "m") if seconds % _UNITS[u] == 0), "s")
        parts.append(f"{seconds / _UNITS[unit]:g}{unit}")
    return ",".join(parts)
