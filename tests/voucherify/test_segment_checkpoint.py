"""A segment walk saved as JSON continues where it stopped."""

from __future__ import annotations

import json

from app.voucherify.segments import MemberCursor


def _customer(n: int, at: str) -> dict[str, str]:
    return {"id": f"cust_{n}", "created_at": at}


def test_a_restored_cursor_skips_what_was_seen_and_keeps_the_ties() -> None:
    walk = MemberCursor()
    walk.unseen(
        [_customer(1, "2026-01-01T00:00:00.001Z"), _customer(2, "2026-01-01T00:00:00.002Z")]
    )
    restored = MemberCursor.from_checkpoint(json.loads(json.dumps(walk.checkpoint())))
    assert restored.starting_after() == walk.starting_after() == "2026-01-01T00:00:00.001Z"
    # The next page overlaps the last millisecond: cust_2 was seen, cust_3 (a tie) was not.
    page = [_customer(2, "2026-01-01T00:00:00.002Z"), _customer(3, "2026-01-01T00:00:00.002Z")]
    assert [c["id"] for c in restored.unseen(page)] == ["cust_3"]


def test_an_empty_checkpoint_starts_from_the_beginning() -> None:
    assert MemberCursor.from_checkpoint({}).starting_after() is None
    assert MemberCursor.from_checkpoint(MemberCursor().checkpoint()).starting_after() is None
