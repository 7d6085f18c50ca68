"""The Braze emulator as a benchmark server: `uvicorn --factory bench.braze_emulator:app`.

BENCH_BRAZE_KEY is the key it accepts; BENCH_BRAZE_LATENCY_MS delays every answer.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from app.braze.emulator import create_emulator, emulator_state


def app() -> FastAPI:
    emulator = create_emulator(api_key=os.environ["BENCH_BRAZE_KEY"], rate_limit=1_000_000)
    emulator_state(emulator).faults.latency_ms = float(
        os.environ.get("BENCH_BRAZE_LATENCY_MS", "0")
    )
    return emulator
