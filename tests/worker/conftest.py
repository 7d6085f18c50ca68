"""The worker's lanes are tested against the delivery engine's fixtures: the Braze emulator,
a pool, a worker factory."""

from tests.delivery.conftest import emulator, make_worker, pool

__all__ = ["emulator", "make_worker", "pool"]
