"""A Braze emulator: `POST /users/track` judged as Braze does, profiles kept in memory, faults
injected on demand. For tests (in process through `httpx.ASGITransport`, or served on loopback)
and benchmarks; never part of the service's own app.

Control from the test's process: `emulator_state(app).faults.fail_next(2, status=503)`.
Control from another process, over HTTP:

- `POST /_emulator/faults` with a `FaultsUpdate` body, e.g. `{"fail_next": [{"count": 2,
  "status": 429, "retry_after": 1}], "latency_ms": 50}`; `GET /_emulator/faults` shows them.
- `GET /_emulator/profiles` (user key -> attributes), `GET /_emulator/requests` (the log).
- `POST /_emulator/reset` forgets profiles, requests and faults.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import SecretStr

from app.braze.payload import MAX_BODY_BYTES, MAX_OBJECTS_PER_REQUEST, TRACK_PATH
from app.sandbox.braze.faults import FaultsUpdate
from app.sandbox.braze.state import EmulatorState, ResetFormat


def create_emulator(
    *,
    api_key: str | SecretStr,
    max_objects: int = MAX_OBJECTS_PER_REQUEST,
    max_body_bytes: int = MAX_BODY_BYTES,
    rate_limit: int = 3000,
    rate_window_seconds: float = 3.0,
    reset_format: ResetFormat = "epoch",
    seed: int | None = 0,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """An ASGI app that answers `POST /users/track` like Braze for the one key `api_key`.

    Limits default to Braze's (75 objects, 4 MB, 3,000 requests per 3 s); `reset_format` says
    whether X-RateLimit-Reset is epoch seconds or seconds left (Braze documents both); `seed`
    makes the random faults repeatable. The state is `emulator_state(app)`.
    """
    key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
    state = EmulatorState(
        api_key=key,
        max_objects=max_objects,
        max_body_bytes=max_body_bytes,
        rate_limit=rate_limit,
        rate_window_seconds=rate_window_seconds,
        reset_format=reset_format,
        seed=seed,
        clock=clock,
    )
    app = FastAPI(title="Braze emulator", docs_url=None, redoc_url=None)
    app.state.emulator = state

    @app.post(TRACK_PATH, include_in_schema=False)
    async def track(request: Request) -> JSONResponse:
        body = await request.body()
        delay = state.faults.delay_seconds()
        if delay > 0:
            await asyncio.sleep(delay)
        answer = state.faults.injected_answer() or state.handle_track(
            authorization=request.headers.get("authorization", ""),
            content_type=request.headers.get("content-type", ""),
            body=body,
        )
        state.record(answer, body=body, delay=delay)
        return JSONResponse(answer.body, status_code=answer.status, headers=answer.headers)

    @app.get("/_emulator/faults")
    async def get_faults() -> dict[str, Any]:
        return state.faults.describe()

    @app.post("/_emulator/faults")
    async def set_faults(update: FaultsUpdate) -> dict[str, Any]:
        state.faults.apply(update)
        return state.faults.describe()

    @app.get("/_emulator/profiles")
    async def profiles() -> dict[str, dict[str, Any]]:
        return state.profiles_snapshot()

    @app.get("/_emulator/requests")
    async def requests() -> list[dict[str, Any]]:
        return state.requests_snapshot()

    @app.post("/_emulator/reset", status_code=204)
    async def reset() -> None:
        state.reset()

    return app


def emulator_state(app: FastAPI) -> EmulatorState:
    """The state of an app made by `create_emulator`: profiles, requests and `faults`."""
    state = app.state.emulator
    if not isinstance(state, EmulatorState):
        raise TypeError("this app was not made by create_emulator")
    return state
