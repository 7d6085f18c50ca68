"""How long a run waits after Voucherify was unavailable while paging its audience, and when it
gives up: pure functions (the run lane applies them, RUN_MAX_FAILURES is the bound)."""

from __future__ import annotations

FIRST_WAIT_SECONDS = 30.0
LONGEST_WAIT_SECONDS = 600.0


def paging_delay(
    failures: int, *, first: float = FIRST_WAIT_SECONDS, cap: float = LONGEST_WAIT_SECONDS
) -> float:
    """The wait in seconds after `failures` unavailable answers in a row (1 = the first one):
    `first`, then twice as long each time, never more than `cap`."""
    if failures < 1:
        raise ValueError("failures counts from 1")
    return float(min(cap, first * 2 ** min(failures - 1, 32)))


def give_up_message(run_id: int, failures: int, *, last_error: str) -> str:
    """The `error` of a run that gave up: why, after how many tries, and what to do."""
    return (
        f"Voucherify was unavailable {failures} times in a row while listing the audience "
        f"(RUN_MAX_FAILURES); last error: {last_error}. The deliveries already created stay; "
        f"once Voucherify answers again, POST /api/v1/runs/{run_id}/resume continues from "
        "where paging stopped"
    )
