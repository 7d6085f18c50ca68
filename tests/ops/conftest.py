"""The worker fixtures of tests/delivery (Braze emulator, asyncpg pool, worker factory), for
the replay tests that run a worker."""

from tests.delivery.conftest import emulator, make_worker, pool

__all__ = ["emulator", "make_worker", "pool"]
