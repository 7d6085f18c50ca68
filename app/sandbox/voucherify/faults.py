"""What answers in place of the Voucherify emulator's API: the rate-limit window and the faults
a test injects, in process (`Faults` methods) or over HTTP (`POST /_emulator/faults`)."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# Not documented by Voucherify: our keys for answers it documents only by status.
_KEYS = {429: "too_many_requests", 500: "internal_server_error", 503: "service_unavailable"}


@dataclass(frozen=True)
class Refusal:
    """An answer given instead of the API's: status, headers and a Voucherify error body."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)
    fault: str | None = None


@dataclass(frozen=True)
class _Failure:
    status: int
    retry_after: float | None
    retry_in: float | None
    key: str | None
    message: str | None


class Faults:
    """`latency_ms` delays every API answer; `fail_next` queues answers that replace the next
    ones. Safe to change from the test's thread while the emulator serves in another."""

    latency_ms: float

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._next: deque[_Failure] = deque()
        self.latency_ms = 0.0

    def clear(self) -> None:
        with self._lock:
            self._next.clear()
            self.latency_ms = 0.0

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int,
        retry_after: float | None = None,
        retry_in: float | None = None,
        key: str | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next `count` API requests with `status`. `retry_after` becomes the
        Retry-After header; `retry_in` the X-Rate-Limit-Retry header, as the Unix second that
        many seconds after the answer."""
        failure = _Failure(status, retry_after, retry_in, key, message)
        with self._lock:
            self._next.extend([failure] * count)

    @property
    def pending_failures(self) -> int:
        return len(self._next)

    def next_failure(self) -> Refusal | None:
        """The answer to give instead of the API's, if one is queued."""
        with self._lock:
            if not self._next:
                return None
            failure = self._next.popleft()
        headers: dict[str, str] = {}
        if failure.retry_after is not None:
            headers["Retry-After"] = f"{failure.retry_after:g}"
        if failure.retry_in is not None:
            headers["X-Rate-Limit-Retry"] = str(math.ceil(self._clock() + failure.retry_in))
        return Refusal(
            failure.status,
            headers,
            error_body(failure.status, key=failure.key, message=failure.message),
            fault="fail_next",
        )

    def apply(self, update: FaultsUpdate) -> None:
        """Apply a `POST /_emulator/faults` body."""
        if update.clear:
            self.clear()
        if "latency_ms" in update.model_fields_set:
            self.latency_ms = update.latency_ms
        for spec in update.fail_next:
            self.fail_next(spec.count, **spec.model_dump(exclude={"count"}))

    def describe(self) -> dict[str, Any]:
        with self._lock:
            pending = [{"status": f.status} for f in self._next]
        return {"latency_ms": self.latency_ms, "pending_failures": pending}


class RateWindow:
    """`limit` requests per fixed window of `window_seconds` (aligned to the clock's
    multiples, as a per-minute counter is); None means no limit."""

    def __init__(
        self, *, limit: int | None, window_seconds: float, clock: Callable[[], float]
    ) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self._clock = clock
        self._window = (0.0, 0)  # (window start, requests counted in it)
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self._window = (0.0, 0)

    def take(self) -> tuple[dict[str, str], Refusal | None]:
        """Count one request: the rate headers for its answer, and the 429 to give instead
        when the window is full (Voucherify then blocks the API until the window ends)."""
        if self.limit is None:
            return {}, None
        now = self._clock()
        start = math.floor(now / self.window_seconds) * self.window_seconds
        with self._lock:
            count = self._window[1] if self._window[0] == start else 0
            if count < self.limit:
                self._window = (start, count + 1)
        headers = {
            "X-Rate-Limit-Limit": str(self.limit),
            "X-Rate-Limit-Remaining": str(max(self.limit - count - 1, 0)),
        }
        if count < self.limit:
            return headers, None
        ends = start + self.window_seconds
        headers |= {
            "Retry-After": str(max(math.ceil(ends - now), 1)),
            "X-Rate-Limit-Retry": str(math.ceil(ends)),
            "X-Rate-Limit-Type": "api_calls",
        }
        return headers, Refusal(429, headers, error_body(429, message="API limit reached"))


def error_body(
    status: int, *, key: str | None = None, message: str | None = None
) -> dict[str, Any]:
    """A Voucherify error body for `status`."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = f"HTTP {status}"
    default_key = _KEYS.get(status, phrase.lower().replace(" ", "_"))
    return {"code": status, "key": key or default_key, "message": message or phrase}


class FailNextSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int = Field(default=1, ge=1)
    status: int = Field(ge=100, le=599)
    retry_after: float | None = Field(default=None, ge=0)
    retry_in: float | None = Field(default=None, ge=0)
    key: str | None = None
    message: str | None = None


class FaultsUpdate(BaseModel):
    """The `POST /_emulator/faults` body, e.g. `{"fail_next": [{"status": 429, "count": 2,
    "retry_after": 1}], "latency_ms": 50}`; `clear` first removes every fault."""

    model_config = ConfigDict(extra="forbid")

    clear: bool = False
    fail_next: list[FailNextSpec] = Field(default_factory=list)
    latency_ms: float = Field(default=0.0, ge=0)
