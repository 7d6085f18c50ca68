"""Metrics tests reuse the worker fixtures: the Braze emulator, an asyncpg pool, workers."""

from __future__ import annotations

from tests.delivery.conftest import emulator, make_worker, pool

__all__ = ["emulator", "make_worker", "pool"]
