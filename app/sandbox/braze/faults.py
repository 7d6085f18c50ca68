"""Faults the Braze emulator injects, set by a test in process (`Faults` methods and attributes)
or from another process (`POST /_emulator/faults` with a `FaultsUpdate` body)."""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


@dataclass(frozen=True)
class FaultAnswer:
    """An answer given instead of processing the request."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)
    fault: str = "fail_next"


@dataclass(frozen=True)
class Outage:
    """Every request between `starts_at` and `ends_at` (clock seconds) gets `status`."""

    starts_at: float
    ends_at: float
    status: int = 503


class Faults:
    """What goes wrong, checked on every `/users/track` request in this order: the delay
    (`latency_ms`, plus `slow_ms` for a `slow_fraction` of requests), an `outage`, the queued
    `fail_next` answers, a random `error_rate` of `error_status`; then, while processing, the
    `max_body_bytes` limit (413), `object_errors` (user key -> errors[] message) and
    `attribute_errors` (attribute name -> errors[] message for any object carrying it).

    Safe to change from the test's thread while the emulator serves in another.
    """

    latency_ms: float
    slow_fraction: float
    slow_ms: float
    error_rate: float
    error_status: int
    object_errors: dict[str, str]
    attribute_errors: dict[str, str]
    max_body_bytes: int | None
    outage: Outage | None

    def __init__(self, *, seed: int | None = 0, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._seed = seed
        self.clear()

    def clear(self) -> None:
        """No fault at all (the random generator restarts from the seed)."""
        with self._lock:
            self.latency_ms = 0.0
            self.slow_fraction = 0.0
            self.slow_ms = 0.0
            self.error_rate = 0.0
            self.error_status = 500
            self.object_errors = {}
            self.attribute_errors = {}
            self.max_body_bytes: int | None = None
            self.outage: Outage | None = None
            self._next: deque[FaultAnswer] = deque()
            self._rng = random.Random(self._seed)

    def reseed(self, seed: int | None) -> None:
        """Restart the random generator behind `slow_fraction` and `error_rate`."""
        with self._lock:
            self._seed = seed
            self._rng = random.Random(seed)

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int,
        retry_after: float | None = None,
        reset: float | None = None,
        message: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next `count` requests with `status`; `retry_after` and `reset` become the
        X-Ratelimit-Retry-After and X-RateLimit-Reset headers."""
        answer_headers = dict(headers or {})
        if retry_after is not None:
            answer_headers["X-Ratelimit-Retry-After"] = f"{retry_after:g}"
        if reset is not None:
            answer_headers["X-RateLimit-Reset"] = f"{reset:g}"
        answer = FaultAnswer(status, answer_headers, {"message": message or _phrase(status)})
        with self._lock:
            self._next.extend([answer] * count)

    def start_outage(self, seconds: float, *, start_in: float = 0.0, status: int = 503) -> None:
        """Answer `status` to every request for `seconds`, starting `start_in` seconds from now."""
        starts_at = self._clock() + start_in
        self.outage = Outage(starts_at=starts_at, ends_at=starts_at + seconds, status=status)

    @property
    def pending_failures(self) -> int:
        """How many `fail_next` answers are still queued."""
        return len(self._next)

    def delay_seconds(self) -> float:
        """The delay to apply to the next answer."""
        with self._lock:
            slow = self.slow_fraction > 0 and self._rng.random() < self.slow_fraction
        return (self.latency_ms + (self.slow_ms if slow else 0.0)) / 1000

    def injected_answer(self) -> FaultAnswer | None:
        """The answer to give instead of processing the request, if a fault says so."""
        outage = self.outage
        if outage is not None and outage.starts_at <= self._clock() < outage.ends_at:
            return _answer(outage.status, fault="outage")
        with self._lock:
            if self._next:
                return self._next.popleft()
            if self.error_rate > 0 and self._rng.random() < self.error_rate:
                return _answer(self.error_status, fault="error_rate")
        return None

    def apply(self, update: FaultsUpdate) -> None:
        """Apply the fields given in `update` (a field given as null removes that fault)."""
        given = update.model_fields_set
        if update.clear:
            self.clear()
        if "seed" in given:
            self.reseed(update.seed)
        for name in ("latency_ms", "slow_fraction", "slow_ms", "error_rate", "error_status"):
            if name in given:
                setattr(self, name, getattr(update, name))
        if "object_errors" in given:
            self.object_errors = dict(update.object_errors or {})
        if "attribute_errors" in given:
            self.attribute_errors = dict(update.attribute_errors or {})
        if "max_body_bytes" in given:
            self.max_body_bytes = update.max_body_bytes
        if "outage" in given:
            spec = update.outage
            if spec is None:
                self.outage = None
            else:
                self.start_outage(spec.seconds, start_in=spec.start_in_seconds, status=spec.status)
        for fail in update.fail_next:
            self.fail_next(
                fail.count,
                status=fail.status,
                retry_after=fail.retry_after,
                reset=fail.reset,
                message=fail.message,
                headers=fail.headers,
            )

    def describe(self) -> dict[str, Any]:
        """The current faults as JSON (what `GET /_emulator/faults` answers)."""
        outage = self.outage
        return {
            "latency_ms": self.latency_ms,
            "slow_fraction": self.slow_fraction,
            "slow_ms": self.slow_ms,
            "error_rate": self.error_rate,
            "error_status": self.error_status,
            "object_errors": dict(self.object_errors),
            "attribute_errors": dict(self.attribute_errors),
            "max_body_bytes": self.max_body_bytes,
            "outage": None if outage is None else vars(outage).copy(),
            "pending_failures": [
                {"status": a.status, "headers": a.headers} for a in list(self._next)
            ],
        }


class FailNextSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int = Field(default=1, ge=1)
    status: int = Field(ge=100, le=599)
    retry_after: float | None = Field(default=None, ge=0)
    reset: float | None = Field(default=None, ge=0)
    message: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)


class OutageSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(gt=0)
    start_in_seconds: float = Field(default=0.0, ge=0)
    status: int = Field(default=503, ge=100, le=599)


class FaultsUpdate(BaseModel):
    """The `POST /_emulator/faults` body: every field optional; `clear` first resets them all."""

    model_config = ConfigDict(extra="forbid")

    clear: bool = False
    fail_next: list[FailNextSpec] = Field(default_factory=list)
    latency_ms: float = Field(default=0.0, ge=0)
    slow_fraction: float = Field(default=0.0, ge=0, le=1)
    slow_ms: float = Field(default=0.0, ge=0)
    error_rate: float = Field(default=0.0, ge=0, le=1)
    error_status: int = Field(default=500, ge=100, le=599)
    seed: int | None = 0
    object_errors: dict[str, str] | None = None
    attribute_errors: dict[str, str] | None = None
    max_body_bytes: int | None = Field(default=None, ge=1)
    outage: OutageSpec | None = None


def _answer(status: int, *, fault: str) -> FaultAnswer:
    return FaultAnswer(status, {}, {"message": _phrase(status)}, fault=fault)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"
