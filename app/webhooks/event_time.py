"""The time an event is ordered by: the envelope's own, unless it lies too far ahead. Pure.

An event's time decides which value wins in Braze (`attribute_state`: an older event never
overwrites a newer one). A time far in the future (a `created_at` in year 9999 was seen) would
win against every real event after it, for good. Beyond EVENT_TIME_MAX_AHEAD_SECONDS past the
moment the webhook is received, the time received takes its place: the event is still
delivered (its code is real; only its clock is wrong), ordered as if it happened on arrival,
and the note says so on each of its deliveries (an `event_time_replaced` attempt row,
written by app/delivery/store/webhook_deliveries.py). Skipping it instead would lose the code.
"""

from __future__ import annotations

from datetime import datetime, timedelta


def bounded_event_time(
    claimed: datetime | None, *, received: datetime, max_ahead: timedelta
) -> tuple[datetime | None, str | None]:
    """The time to order the event by, and a note when it is not the `claimed` one."""
    if claimed is None or claimed - received <= max_ahead:
        return claimed, None
    return received, (
        f"the event's time {claimed.isoformat()} is more than "
        f"{max_ahead.total_seconds():g} s (EVENT_TIME_MAX_AHEAD_SECONDS) ahead of the time it "
        f"was received, {received.isoformat()}: it is ordered by the time received"
    )
