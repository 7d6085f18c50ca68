"""How long the Voucherify client waits before trying a call again: pure functions.

Two kinds of wait. A 429 says when to come back (`Retry-After` in seconds, or
`X-Rate-Limit-Retry` as the Unix second of the next allowed call, reference §2.2). A 5xx, a
timeout or a refused connection says nothing, so the wait doubles per attempt up to a cap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

DEFAULT_MAX_ATTEMPTS = 4
DEFAULT_BACKOFF_BASE_SECONDS = 0.5
DEFAULT_BACKOFF_CAP_SECONDS = 8.0
# A run or a delivery rescheduled after 429s comes back after at least this long.
RESCHEDULE_AFTER_429_SECONDS = 30.0
# Above this an X-Rate-Limit-Retry cannot be Unix seconds (year 5138): read it as milliseconds.
_EPOCH_MILLISECONDS_FROM = 1e11


def is_retryable_status(status: int) -> bool:
    """True for answers that say "not now" rather than "not this": any 5xx but 501 (Not
    Implemented) and 505 (HTTP Version Not Supported), which a retry cannot change."""
    return status >= 500 and status not in {501, 505}


def backoff_delay(
    *,
    attempt: int,
    base: float = DEFAULT_BACKOFF_BASE_SECONDS,
    cap: float = DEFAULT_BACKOFF_CAP_SECONDS,
) -> float:
    """The wait in seconds after failed attempt number `attempt` (1 = the first try):
    `base`, then twice as long each time, never more than `cap`.

    No jitter: calls already go out through the client's rate budget, which spaces them.
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    return float(min(cap, base * 2 ** (attempt - 1)))


def rate_limit_wait(headers: Mapping[str, str], *, now: float) -> float | None:
    """The seconds a 429 asks us to wait, from `now` (Unix seconds), or None when it says
    nothing usable. `headers` must look names up case-insensitively (httpx.Headers does).

    `Retry-After` wins over `X-Rate-Limit-Retry`: it is relative, so our clock's skew from
    Voucherify's cannot stretch or shrink it. A time already past waits 0.
    """
    retry_after = headers.get("retry-after")
    if retry_after is not None:
        seconds = _seconds_or_http_date(retry_after.strip(), now=now)
        if seconds is not None:
            return max(seconds, 0.0)
    next_allowed = _number(headers.get("x-rate-limit-retry"))
    if next_allowed is None:
        return None
    if next_allowed >= _EPOCH_MILLISECONDS_FROM:
        next_allowed /= 1000
    return max(next_allowed - now, 0.0)


def reschedule_after_429(retry_after: float | None) -> float:
    """Seconds until a run or a delivery tries again once the client gave up on 429s: the wait
    Voucherify asked for (an hour, the rest of a quota), never under
    RESCHEDULE_AFTER_429_SECONDS (the client has already waited out short ones)."""
    return max(retry_after or 0.0, RESCHEDULE_AFTER_429_SECONDS)


def _seconds_or_http_date(value: str, *, now: float) -> float | None:
    seconds = _number(value)
    if seconds is not None:
        return seconds
    # RFC 9110 also allows an HTTP date; Voucherify documents seconds, but a proxy may not.
    try:
        return parsedate_to_datetime(value).timestamp() - now
    except (TypeError, ValueError):
        return None


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
