"""Summing a run's grouped delivery rows into its progress."""

from __future__ import annotations

from typing import Any

from app.runs.progress import summarize


def _row(status: str, n: int, *, resolved: bool = True, skip: str | None = None,
         failure: str | None = None) -> dict[str, Any]:  # fmt: skip
    return {"status": status, "n": n, "resolved": resolved, "skip_reason": skip,
            "failure": failure}  # fmt: skip


def test_counts_by_outcome_and_reason() -> None:
    rows = [
        _row("delivered", 5), _row("in_flight", 1), _row("pending", 2, resolved=False),
        _row("skipped", 3, resolved=False, skip="no_consent"),
        _row("skipped", 1, skip="unchanged"),
        _row("failed", 2, resolved=False, failure="no_voucher_suitable_for_publication"),
        _row("dead", 1, failure="retries_exhausted"),
    ]  # fmt: skip
    assert summarize(rows, publishes=True) == {
        "published": 8, "delivered": 5, "pending": 3,
        "skipped": {"total": 4, "reasons": {"no_consent": 3, "unchanged": 1}},
        "failed": {"total": 3, "reasons": {"no_voucher_suitable_for_publication": 2,
                                           "retries_exhausted": 1}},
    }  # fmt: skip


def test_a_run_that_publishes_nothing_counts_no_codes() -> None:
    assert summarize([_row("delivered", 4)], publishes=False)["published"] == 0
