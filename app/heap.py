"""The garbage collector's settings for the long-running commands (`serve`, `worker`).

Why: a webhook's 5 KB body parses into hundreds of dicts and lists, so CPython's default
generation-0 threshold (700 new containers) ran a collection every few webhooks, and every
older-generation collection walked the ~100 MB of objects imported at start-up (FastAPI,
pydantic, SQLAlchemy). Under `make bench` load the collector took 1.7 s of a 13 s run of the API
process. Freezing what start-up built takes it out of every later collection, and a higher
threshold runs collections less often: 0.05 s in the same run. Reference counting still frees
almost everything at once; only reference cycles wait for a collection.
"""

from __future__ import annotations

import gc

# New containers between generation-0 collections (CPython's default: 700). The older
# generations keep their defaults (10 and 10 younger collections).
GENERATION0_THRESHOLD = 5000


def settle_heap() -> None:
    """Collect once, then freeze what is left, so that later collections skip it.
    Call when start-up is done (imports, app built), before serving."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GENERATION0_THRESHOLD)
