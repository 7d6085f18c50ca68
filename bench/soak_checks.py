"""What the soak checks once the queue has settled, and the report it prints."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.events import Stream, expected_profiles, profile_mismatches, stale_overwrites
from bench.poster import Posted
from bench.relay import applied_objects, profiles, query, status_counts


@dataclass
class Report:
    counts: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def fail_unless(self, ok: bool, message: str) -> None:
        if not ok:
            self.failures.append(message)

    def render(self) -> str:
        lines = ["", "soak counts:"]
        lines += [
            f"  {name}: {json.dumps(value, default=str)}" for name, value in self.counts.items()
        ]
        lines += [f"  note: {note}" for note in self.notes]
        if self.passed:
            lines.append("PASSED")
        else:
            lines.append("FAILED:")
            lines += [f"  - {failure}" for failure in self.failures]
        return "\n".join(lines)


def check(
    *, stream: Stream, posted: Posted, database: str, braze_url: str, chaos: dict[str, Any],
    seconds: float,
) -> Report:  # fmt: skip
    report = Report()
    acked = {w.key for w, status in zip(stream.webhooks, posted.final, strict=True)
             if 200 <= status < 300}  # fmt: skip
    unacked = {w.key for w in stream.webhooks} - acked
    stored = {(r[0], r[1]) for r in query(
        database, "SELECT voucherify_event_id, source_id FROM webhook_events")}  # fmt: skip
    statuses = status_counts(database)
    unmatched = query(database, "SELECT count(*) FROM webhook_events WHERE outcome <> 'matched'")[
        0
    ][0]
    per_event = query(
        database, "SELECT count(*) FROM deliveries GROUP BY event_id HAVING count(*) > 1"
    )
    skipped = {r["skip_reason"]: r["n"] for r in query(database, (
        "SELECT skip_reason, count(*) AS n FROM deliveries WHERE status = 'skipped' "
        "GROUP BY 1"))}  # fmt: skip
    unsent = query(database, (
        "SELECT status, last_error, count(*) AS n FROM deliveries "
        "WHERE status IN ('dead', 'failed') GROUP BY 1, 2 ORDER BY 3 DESC"))  # fmt: skip
    requests = httpx.get(f"{braze_url}/_emulator/requests", timeout=60).json()
    answers = Counter(f"{r['status']} {r['fault'] or ''}".strip() for r in requests)

    by_user = {user: [w for w in events if w.key in acked]
               for user, events in stream.by_user.items()}  # fmt: skip
    mismatches = profile_mismatches(expected_profiles(by_user), profiles(braze_url))
    stale = stale_overwrites(by_user, applied_objects(braze_url))

    report.counts = {
        "seconds": round(seconds),
        "webhooks posted (duplicates included)": len(stream.webhooks),
        "unique events / users": f"{stream.unique} / {stream.users}",
        "duplicates / out-of-order pairs": f"{stream.duplicates} / {stream.out_of_order}",
        "intake answers (retries included)": dict(sorted(posted.statuses.items())),
        "intake retries / broken connections": f"{posted.retries} / {posted.connection_errors}",
        "acknowledged / never acknowledged": f"{len(acked)} / {len(unacked)}",
        "acknowledged but missing from webhook_events": len(acked - stored),
        "deliveries by status": dict(sorted(statuses.items())),
        "skipped by reason": skipped,
        "events stored without a matching distribution": unmatched,
        "events with more than one delivery": len(per_event),
        "Braze emulator answers": dict(sorted(answers.items())),
        "faults injected": chaos,
        "users whose final values differ at Braze": len(mismatches),
        "older values applied after newer ones": len(stale),
    }
    report.fail_unless(not unacked, f"{len(unacked)} webhooks were never acknowledged")
    report.fail_unless(
        acked <= stored, f"acknowledged webhooks missing: {sorted(acked - stored)[:5]}"
    )
    left = statuses.get("pending", 0) + statuses.get("in_flight", 0)
    report.fail_unless(not left, f"{left} deliveries still pending or in flight")
    report.fail_unless(not unmatched, f"{unmatched} events stored unmatched (no delivery)")
    report.fail_unless(not per_event, f"{len(per_event)} events got more than one delivery")
    report.fail_unless(not mismatches, f"final values wrong at Braze, e.g. {mismatches[:3]}")
    report.fail_unless(not stale, f"older values overwrote newer ones, e.g. {stale[:3]}")
    bad = {s: n for s, n in posted.statuses.items() if s not in (200, 202, 503)}
    report.fail_unless(not bad, f"intake answered other than 200/202/503: {bad}")
    readyz = chaos["readyz_while_down"]
    report.fail_unless(all(set(probe.values()) == {503} for probe in readyz),
                       f"/readyz while Postgres was down: {readyz} (expected 503)")  # fmt: skip
    for row in unsent:
        report.notes.append(f"{row['n']} {row['status']}: {row['last_error']}")
    return report
