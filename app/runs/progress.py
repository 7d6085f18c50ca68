"""A run's progress from its deliveries: one grouped query, summed up here. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# Deliveries of the given runs, grouped by what became of them. A failure's reason is the
# Voucherify key the publisher put first in last_error (e.g. no_voucher_suitable_for_publication)
# or, for a delivery that had its attributes, Braze's refusal. `{ids}` is the bind parameter.
PROGRESS_SQL = """
SELECT d.run_id, d.status, d.skip_reason, d.attributes IS NOT NULL AS resolved,
       CASE WHEN d.status = 'dead' THEN 'retries_exhausted'
            WHEN d.status <> 'failed' THEN NULL
            WHEN d.attributes IS NOT NULL THEN 'braze_rejected'
            ELSE coalesce(substring(d.last_error from '^([a-z]+(_[a-z]+)+):'), 'other')
       END AS failure,
       count(*) AS n
FROM deliveries AS d
WHERE d.run_id = ANY({ids})
GROUP BY 1, 2, 3, 4, 5
"""


def summarize(rows: Iterable[Mapping[str, Any]], *, publishes: bool) -> dict[str, Any]:
    """Counts of one run: published, delivered, pending, skipped and failed with reasons.

    `publishes`: the run publishes codes (a delivery with attributes then holds one).
    """
    counts: dict[str, Any] = {
        "published": 0, "delivered": 0, "pending": 0,
        "skipped": {"total": 0, "reasons": {}}, "failed": {"total": 0, "reasons": {}},
    }  # fmt: skip
    for row in rows:
        n, status = int(row["n"]), row["status"]
        if publishes and row["resolved"]:
            counts["published"] += n
        if status == "delivered":
            counts["delivered"] += n
        elif status in ("pending", "in_flight"):
            counts["pending"] += n
        elif status == "skipped":
            _add(counts["skipped"], row["skip_reason"] or "other", n)
        elif status in ("failed", "dead"):
            _add(counts["failed"], row["failure"] or "other", n)
    return counts


def _add(bucket: dict[str, Any], reason: str, n: int) -> None:
    bucket["total"] += n
    bucket["reasons"][reason] = bucket["reasons"].get(reason, 0) + n
