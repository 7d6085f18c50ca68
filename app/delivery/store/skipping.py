"""Skipping deliveries that still wait, each with an attempt row saying why: the one statement
behind canceling a run or a replay, and behind the queue sweep (`hold.tend`)."""

from __future__ import annotations


def skip_statement(where: str, *, reason: str, message: str) -> str:
    """Skip the deliveries `where` selects as `reason`; `message` (an SQL expression: a literal,
    or a placeholder of the caller's driver) goes to `last_error` and to each attempt row.
    Leases are cleared: the sweep also settles in-flight rows whose lease expired."""
    return f"""
WITH skipped AS (
    UPDATE deliveries SET status = 'skipped', skip_reason = '{reason}', last_error = {message},
        lease_expires_at = NULL, leased_by = NULL, updated_at = clock_timestamp()
    WHERE {where}
    RETURNING id, replay_id
)
INSERT INTO delivery_attempts (delivery_id, outcome, message, replay_id)
SELECT id, 'skipped', {message}, replay_id FROM skipped
"""
