"""An operator's forced replay corrects what `attribute_state` records for the user.

`attribute_state` refuses a value from an event older than the one it recorded (`stale`). When
the recorded time is wrong (an event time in year 9999 was seen), every real event after it is
refused, for good. Replaying a delivery with `force` says "this value is the one Braze must
hold": for each of its attributes, a recorded time later than the delivery's event is set back
to it, in the replay's transaction, so that the value is sent rather than refused and real
events after it are sent again. Where the delivery has no event time, the recorded time is
cleared. The coalescing step also lets a forced value through if a newer one lands meanwhile
(`coalesce.plan`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_RESET = text("""
WITH wanted AS (
    SELECT d.braze_user_key, a.attribute, d.event_time
    FROM deliveries AS d CROSS JOIN LATERAL jsonb_object_keys(d.attributes) AS a(attribute)
    WHERE d.id = :delivery_id AND d.braze_user_key IS NOT NULL
      AND jsonb_typeof(d.attributes) = 'object'
),
later AS (
    SELECT s.braze_user_key, s.attribute, s.event_time AS recorded, w.event_time
    FROM attribute_state AS s JOIN wanted AS w USING (braze_user_key, attribute)
    WHERE s.event_time > coalesce(w.event_time, '-infinity')
    FOR UPDATE OF s
)
UPDATE attribute_state AS s SET event_time = later.event_time, updated_at = clock_timestamp()
FROM later WHERE s.braze_user_key = later.braze_user_key AND s.attribute = later.attribute
RETURNING s.attribute, later.recorded, later.event_time
""")


@dataclass(frozen=True)
class StateReset:
    attribute: str
    recorded: datetime
    event_time: datetime | None


async def reset_for_forced_replay(session: AsyncSession, *, delivery_id: int) -> list[StateReset]:
    """Set back the recorded times later than the delivery's event (the delivery as stored:
    flush first); what was set back, by attribute."""
    rows = await session.execute(_RESET, {"delivery_id": delivery_id})
    return sorted((StateReset(*row) for row in rows), key=lambda reset: reset.attribute)


def describe(resets: list[StateReset]) -> str:
    """For the delivery's attempt log: what the replay set back, and why."""
    if not resets:
        return ""
    each = ", ".join(
        f"{r.attribute} (recorded {r.recorded.isoformat()}, now "
        f"{r.event_time.isoformat() if r.event_time else 'none'})"
        for r in resets
    )
    return (
        f"; recorded event times later than this delivery's set back, so it wins over stale: {each}"
    )
