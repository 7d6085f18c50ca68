"""The deliveries intake creates, inside the inbox's group-commit statement
(app/webhooks/group_commit.py): one statement stores a batch of webhooks and their deliveries,
so this module owns the parts of it that write `deliveries` and `delivery_attempts`, and the
inbox's statement embeds them as common table expressions."""

from __future__ import annotations

# A common table expression's body: reads `event` (the stored webhook events) and `incoming`
# (the batch, with the deliveries intake planned as JSON), returns the new rows' id and event_id.
FROM_STORED_EVENTS = """
INSERT INTO deliveries (
    event_id, distribution_id, distribution_version, trigger, braze_user_key, attributes,
    skip_reason, last_error, event_time, status)
SELECT event.id, d.distribution_id, d.distribution_version, 'webhook', d.braze_user_key,
       d.attributes, d.skip_reason, d.last_error, event.event_created_at, d.status
FROM event
JOIN incoming USING (voucherify_event_id, source_id)
CROSS JOIN jsonb_to_recordset(incoming.deliveries::jsonb) AS d(
    distribution_id uuid, distribution_version int, braze_user_key text, attributes jsonb,
    skip_reason text, last_error text, status text)
RETURNING id, event_id
"""
# Rare: an event time replaced (app/webhooks/event_time.py); each delivery's log says so.
EVENT_TIME_REPLACED = "event_time_replaced"  # the attempt row that carries the note
# Reads `created` (the CTE above) with `event` and `incoming` (its `time_note`).
EVENT_TIME_NOTES = f"""
INSERT INTO delivery_attempts (delivery_id, outcome, message)
SELECT created.id, '{EVENT_TIME_REPLACED}', incoming.time_note
FROM created JOIN event ON event.id = created.event_id
JOIN incoming USING (voucherify_event_id, source_id)
WHERE incoming.time_note IS NOT NULL
"""
