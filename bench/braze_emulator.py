"""The Braze emulator as a benchmark server: `uvicorn --factory bench.braze_emulator:app`.

BENCH_BRAZE_KEY is the key it accepts; BENCH_BRAZE_LATENCY_MS delays every answer;
BENCH_BRAZE_RATE_LIMIT is its requests per 3 s (default: no practical limit).
BENCH_BRAZE_RECORD=1 keeps every applied attributes object, in the order applied, at
`GET /_bench/applied` (the end-to-end benchmark and the soak check their values and order).
BENCH_BRAZE_RATE_LIMITED_FRACTION answers that share of requests 429 (Retry-After 1 s), on top
of the emulator's own faults (`POST /_emulator/faults`).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Response

from app.delivery.coalesce import FLAG_KEYS, IDENTITY_KEYS
from app.sandbox.braze.emulator import create_emulator, emulator_state
from app.sandbox.braze.faults import FaultAnswer, Faults
from app.sandbox.braze.state import Answer, user_key


class RateLimitingFaults(Faults):
    """The emulator's faults, plus a random share of 429 answers (Braze's own rate limit being
    spent by other producers of the workspace)."""

    def __init__(self, *, rate_limited_fraction: float, seed: int = 0) -> None:
        super().__init__(seed=seed)
        self.rate_limited_fraction = rate_limited_fraction
        self._limited_rng = random.Random(seed + 1)
        self._limited_lock = threading.Lock()

    def injected_answer(self) -> FaultAnswer | None:
        answer = super().injected_answer()
        if answer is not None:
            return answer
        with self._limited_lock:
            limited = self._limited_rng.random() < self.rate_limited_fraction
        if limited:
            body = {"message": "Rate Limit Exceeded"}
            return FaultAnswer(429, {"X-Ratelimit-Retry-After": "1"}, body, fault="rate_limited")
        return None


def _recording(handle: Callable[..., Answer], applied: list[list[Any]]) -> Callable[..., Answer]:
    """`handle_track`, keeping `[user key, attributes, time]` of every object it applied."""

    def handle_track(*, authorization: str, content_type: str, body: bytes) -> Answer:
        answer = handle(authorization=authorization, content_type=content_type, body=body)
        if 200 <= answer.status < 300:
            at, failed = time.time(), set(answer.error_indexes)
            for index, obj in enumerate(json.loads(body).get("attributes", [])):
                if index not in failed:
                    values = {k: v for k, v in obj.items()
                              if k not in IDENTITY_KEYS and k not in FLAG_KEYS}  # fmt: skip
                    applied.append([user_key(obj), values, at])
        return answer

    return handle_track


def app() -> FastAPI:
    emulator = create_emulator(
        api_key=os.environ["BENCH_BRAZE_KEY"],
        rate_limit=int(os.environ.get("BENCH_BRAZE_RATE_LIMIT", "1000000")),
    )
    state = emulator_state(emulator)
    fraction = float(os.environ.get("BENCH_BRAZE_RATE_LIMITED_FRACTION", "0"))
    if fraction:
        state.faults = RateLimitingFaults(rate_limited_fraction=fraction)
    state.faults.latency_ms = float(os.environ.get("BENCH_BRAZE_LATENCY_MS", "0"))
    if os.environ.get("BENCH_BRAZE_RECORD") == "1":
        applied: list[list[Any]] = []
        # Wrapped in place: create_emulator's route calls this object's method.
        state.handle_track = _recording(state.handle_track, applied)  # type: ignore[method-assign]

        @emulator.get("/_bench/applied")
        async def applied_objects() -> Response:
            # Tens of thousands of items: json.dumps, not FastAPI's slower encoder.
            return Response(json.dumps(applied), media_type="application/json")

    return emulator
