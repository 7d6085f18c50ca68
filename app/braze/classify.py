"""What a Braze `/users/track` answer means for the objects it carried: a pure function.

Rules from `reference/braze.md` §2-§3: 2xx with `errors[]` fails only the indexed objects; a 400
is fatal (split the batch to find the bad object, or reject it when alone); 413 means too big;
429 waits for `X-Ratelimit-Retry-After` or `X-RateLimit-Reset`; 5xx and timeouts are retried;
401/403/404/415 are configuration errors that retrying will not fix.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

# Kept in the audit log; Braze messages are short, a body of 75 errors is not.
MAX_MESSAGE_CHARS = 500
# No header said how long to wait after a 429: one burst window of Braze's 3-second limit.
DEFAULT_RATE_LIMIT_WAIT = timedelta(seconds=3)
# Hourly limits reset "on the clock hour": no sane header asks for longer.
MAX_RATE_LIMIT_WAIT = timedelta(hours=1)
# X-RateLimit-Reset is epoch seconds on one Braze page and seconds-left on another.
_EPOCH_THRESHOLD = 1_000_000_000

CONFIG_ERROR_STATUSES = frozenset({401, 403, 404, 415})


class Kind(StrEnum):
    DELIVERED = "delivered"  # accepted; objects in `failed` were refused, the rest delivered
    SPLIT = "split"  # the batch as a whole was refused: send its halves separately
    REJECTED = "rejected"  # objects in `failed` are fatal; any others were not processed
    RATE_LIMITED = "rate_limited"  # wait `retry_after`, then send the same batch again
    RETRY = "retry"  # transient: send again later, per the retry schedule
    CONFIG_ERROR = "config_error"  # key, URL or permissions are wrong: stop sending and alert


@dataclass(frozen=True)
class RateLimitReading:
    """The X-RateLimit-* headers of one answer; `resets_in` is normalised from either encoding."""

    limit: int | None
    remaining: int | None
    resets_in: timedelta | None


@dataclass(frozen=True)
class Classification:
    kind: Kind
    object_count: int
    status_code: int | None = None
    # Braze's message (or ours for a transport error), truncated to MAX_MESSAGE_CHARS.
    message: str = ""
    # Index in the request's `attributes` array -> Braze's reason (several joined by "; ").
    failed: Mapping[int, str] = field(default_factory=dict)
    retry_after: timedelta | None = None
    rate_limit: RateLimitReading | None = None

    @property
    def delivered_indexes(self) -> frozenset[int]:
        """Indexes Braze accepted: all but `failed` when delivered, none otherwise."""
        if self.kind is not Kind.DELIVERED:
            return frozenset()
        return frozenset(range(self.object_count)) - self.failed.keys()

    @property
    def unprocessed_indexes(self) -> frozenset[int]:
        """Indexes neither delivered nor refused: they go out again (split, retried or re-sent)."""
        if self.kind is Kind.DELIVERED:
            return frozenset()
        return frozenset(range(self.object_count)) - self.failed.keys()


def classify_response(
    *,
    status_code: int,
    headers: Mapping[str, str],
    body: str | bytes,
    object_count: int,
    now: datetime,
) -> Classification:
    """Classify one `/users/track` answer to a request of `object_count` attribute objects.

    Headers are read case-insensitively and `now` (timezone-aware) turns an epoch
    `X-RateLimit-Reset` into a wait. Never raises, whatever the body holds.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    payload = _parse_json(body)
    answer = Classification(
        kind=Kind.DELIVERED,
        object_count=object_count,
        status_code=status_code,
        message=_message(payload, body),
        rate_limit=read_rate_limit(lowered, now=now),
    )
    failed = _indexed_errors(payload, object_count)
    if 200 <= status_code < 300:
        return replace(answer, failed=failed)
    if status_code == 429:
        return replace(
            answer, kind=Kind.RATE_LIMITED, retry_after=rate_limit_wait(lowered, now=now)
        )
    if status_code in (400, 413):
        if status_code == 400 and failed:
            return replace(answer, kind=Kind.REJECTED, failed=failed)
        if object_count > 1:
            return replace(answer, kind=Kind.SPLIT)
        reason = answer.message or f"HTTP {status_code}"
        return replace(answer, kind=Kind.REJECTED, failed={0: reason})
    if status_code == 408 or status_code >= 500:
        return replace(answer, kind=Kind.RETRY, retry_after=_header_seconds(lowered, "retry-after"))
    # 401/403/404/415 by Braze's table; any other status (3xx, 405, ...) also means we talk to
    # the wrong thing, and stopping keeps the queue where dropping would lose it.
    return replace(answer, kind=Kind.CONFIG_ERROR)


def classify_transport_error(exc: BaseException, *, object_count: int) -> Classification:
    """A request that got no answer (timeout, refused or reset connection): retry later.

    Re-sending attribute sets is safe even when Braze did receive the first copy.
    """
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return Classification(
        kind=Kind.RETRY, object_count=object_count, message=truncate(text, MAX_MESSAGE_CHARS)
    )


def read_rate_limit(headers: Mapping[str, str], *, now: datetime) -> RateLimitReading | None:
    """The X-RateLimit-Limit/Remaining/Reset reading, or None when none of them is present.

    `headers` must have lower-case names.
    """
    limit = _header_int(headers, "x-ratelimit-limit")
    remaining = _header_int(headers, "x-ratelimit-remaining")
    resets_in = _reset_wait(headers, now=now)
    if limit is None and remaining is None and resets_in is None:
        return None
    return RateLimitReading(limit=limit, remaining=remaining, resets_in=resets_in)


def rate_limit_wait(headers: Mapping[str, str], *, now: datetime) -> timedelta:
    """How long to wait after a 429: X-Ratelimit-Retry-After, else Retry-After, else
    X-RateLimit-Reset (epoch or seconds-left), else DEFAULT_RATE_LIMIT_WAIT; at most an hour.

    `headers` must have lower-case names.
    """
    for wait in (
        _header_seconds(headers, "x-ratelimit-retry-after"),
        _header_seconds(headers, "retry-after"),
        _reset_wait(headers, now=now),
    ):
        if wait is not None:
            return min(wait, MAX_RATE_LIMIT_WAIT)
    return DEFAULT_RATE_LIMIT_WAIT


def truncate(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    marker = f"... [{len(text) - limit} more characters]"
    return text[: max(limit - len(marker), 0)] + marker


def _reset_wait(headers: Mapping[str, str], *, now: datetime) -> timedelta | None:
    reset = _header_float(headers, "x-ratelimit-reset")
    if reset is None:
        return None
    seconds = reset - now.timestamp() if reset > _EPOCH_THRESHOLD else reset
    return timedelta(seconds=max(seconds, 0.0))


def _header_seconds(headers: Mapping[str, str], name: str) -> timedelta | None:
    # HTTP-date Retry-After values are not used by Braze; they read as absent.
    value = _header_float(headers, name)
    return None if value is None else timedelta(seconds=max(value, 0.0))


def _header_float(headers: Mapping[str, str], name: str) -> float | None:
    try:
        value = float(headers[name].strip())
    except (KeyError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _header_int(headers: Mapping[str, str], name: str) -> int | None:
    value = _header_float(headers, name)
    return None if value is None else int(value)


def _parse_json(body: str | bytes) -> object:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def _message(payload: object, body: str | bytes) -> str:
    """Braze's `message`, else the body itself (a 400 may carry only `errors[]`, or HTML)."""
    if isinstance(payload, dict) and isinstance(payload.get("message"), str):
        text = payload["message"]
        if payload.get("errors") and text != "success":
            text = f"{text}: {_error_types(payload['errors'])}"
        return truncate(text, MAX_MESSAGE_CHARS)
    raw = body.decode(errors="replace") if isinstance(body, bytes) else body
    return truncate(raw.strip(), MAX_MESSAGE_CHARS)


def _error_types(errors: object) -> str:
    if not isinstance(errors, list):
        return str(errors)
    return "; ".join(str(e.get("type")) if isinstance(e, dict) else str(e) for e in errors)


def _indexed_errors(payload: object, object_count: int) -> dict[int, str]:
    """`errors[]` entries that name one of our attribute objects; others cannot be acted on."""
    if not isinstance(payload, dict) or not isinstance(payload.get("errors"), list):
        return {}
    failed: dict[int, list[str]] = {}
    for error in payload["errors"]:
        if not isinstance(error, dict) or error.get("input_array") != "attributes":
            continue
        index = error.get("index")
        if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < object_count:
            failed.setdefault(index, []).append(str(error.get("type") or "error"))
    return {index: truncate("; ".join(types), MAX_MESSAGE_CHARS) for index, types in failed.items()}
