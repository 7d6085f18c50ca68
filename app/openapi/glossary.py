"""Descriptions of the fields whose model does not carry one (a `Field(description=...)` on the
model wins). By schema where a name means something particular there, else by field name: a
name means the same thing everywhere in this API."""

from __future__ import annotations

BY_NAME: dict[str, str] = {
    "id": "the row's id: pass it in paths such as /api/v1/deliveries/{id}",
    "created_at": "when the row was created (UTC)",
    "updated_at": "when it last changed (UTC)",
    "deleted_at": "when it was deleted (soft: the row stays readable); null while live",
    "distribution_id": "the distribution's id",
    "distribution_version": "the distribution's version that resolved it (each change adds 1)",
    "event_id": "the stored webhook (GET /api/v1/events/{id}); null when no event created it",
    "braze_user_key": "the Braze user, as `identifier_type:value` (external_id:u-1)",
    "items": "this page's rows, newest first",
    "started_at": "when work on it began (UTC); null until then",
    "finished_at": "when it ended (UTC); null until then",
    "requested_at": "when it was asked for (UTC)",
    "filter": "what it covers, as given",
    "force": "also send values Braze already has (skipped as `unchanged` otherwise)",
    "error": "what went wrong, when something did; null otherwise",
    "name": "unique among live distributions; what `distributions import` matches on",
    "description": "free text for the people who maintain it",
    "triggers": "the Voucherify event types (`event.type`) it listens to",
    "filters": "narrows the triggers' events; every key given must match",
    "code_source": "where the code comes from: the event, or published from a campaign",
    "identity": "which Braze user gets the attributes, read from the event",
    "consent": "opt-in rule checked on the customer; null: no check",
    "mapping": "event fields to Braze custom attributes (the code must be one)",
    "action": "set the attributes, or unset them (send nulls: clear a redeemed code)",
    "update_existing_only": "Braze updates existing profiles only (never creates one)",
    "status": "its state (see the enum)",
    "version": "1 on creation, plus 1 with every change",
    "type": "which kind (see the enum)",
    "format": "how the value is converted before it is sent (raw: as the event has it)",
    "attribute": "the Braze custom attribute name",
    "source": "the source path in the event",
    "progress": "counts so far",
    "delay_seconds": "seconds between the request and the start (600 by default)",
    "audience": "who gets it: exactly one of segment_id, customer_ids or source_ids",
}

BY_SCHEMA: dict[str, dict[str, str]] = {
    "EventSummary": {
        "voucherify_event_id": "Voucherify's event.id",
        "source_id": "Voucherify's source.id: the project webhook or the distribution",
        "source_object": "webhook (project webhook) or distribution (distribution webhook)",
        "send_out_id": "Voucherify's send-out id (the envelope's top-level id, whs_...)",
        "event_type": "Voucherify's event.type (customer.segment.entered, ...)",
        "customer_id": "the event's Voucherify customer id (cust_...)",
        "customer_source_id": "the event's customer source_id (your id for the customer)",
        "event_created_at": "when the event happened at Voucherify (event.created_at)",
        "received_at": "when the webhook reached voucher-relay (UTC)",
        "signature_result": "which signature check passed: valid_raw (the bytes as sent) or "
        "valid_compact (the body without whitespace)",
        "outcome": "matched (deliveries created), unmatched (no active distribution listens) "
        "or ignored (an event type voucher-relay does not handle)",
        "deliveries_created": "deliveries the webhook created",
    },
    "DeliverySummary": {
        "id": "the delivery's id",
        "trigger": "what created it: webhook, run, manual (a replay) or bulk (a bulk replay)",
        "status": "pending, in_flight, delivered, skipped, failed or dead",
        "skip_reason": "why it was skipped (no_consent, unchanged, stale, ...); null otherwise",
        "attempts": "tries used of RETRY_SCHEDULE",
        "next_attempt_at": "when it is due (9999-01-01: held by a paused distribution)",
        "last_error": "the last failure or skip, in words",
        "event_time": "the time of the event it carries: newer values win per attribute",
        "delivered_at": "when Braze took it; null until then",
    },
    "DeliveryDetail": {
        "force": "sent even if Braze has the values (a forced replay)",
        "attempts_log": "every try and replay, oldest first",
    },
    "BrazeRequestSummary": {
        "id": "the Braze request's id (GET /api/v1/braze-requests/{id})",
        "started_at": "when the call began (UTC)",
        "duration_ms": "how long Braze took to answer (or to fail)",
        "status_code": "Braze's HTTP status; null for a timeout or a connection error",
        "kind": "what the answer meant: delivered, split, rejected, rate_limited, retry or "
        "config_error",
        "objects": "attributes objects in the request (at most 75)",
        "request_bytes": "the body's size",
        "error": "the failure, when the call failed",
    },
    "BrazeRequestDetail": {
        "response_body": "Braze's answer (truncated)",
        "response_headers": "Braze's answer headers (rate limit ones among them)",
        "worker": "the worker that sent it (host:pid:id)",
    },
    "Attempt": {
        "id": "the attempt's id",
        "attempted_at": "when (UTC)",
        "outcome": "what became of the delivery: delivered, retry, failed, dead, skipped, "
        "replayed, ...",
        "message": "Braze's or voucher-relay's words about it",
        "omitted": "attributes left out of the object, by reason (unchanged, stale)",
        "braze_request": "the Braze call it travelled in; null when none was made",
    },
    "ErrorBody": {"error": "what went wrong"},
    "ErrorDetail": {
        "code": "a stable, machine-readable code (validation_error, not_found, ...)",
        "message": "what is wrong, in words",
        "details": "where: for validation errors, one entry per problem",
    },
    "CodeFromEvent": {"type": "event: the code travels in the event"},
    "CodeFromPublication": {"type": "publish: voucher-relay publishes a code of `campaign`"},
    "Identity": {"type": "the Braze identifier to use"},
    "MappingItem": {"format": "how the value is converted (raw: as the event has it)"},
    "DistributionList": {"items": "every distribution that matches (not paged)"},
    "FieldCatalogue": {
        "fields": "the mappable fields, with an example each",
        "notes": "how paths are read",
    },
    "FieldInfo": {
        "source": "the path to use in a mapping",
        "description": "what it holds",
        "example": "a value from a real event",
        "suggested_format": "the format that fits it",
        "events": "the events that carry it",
    },
    "PreviewResult": {
        "outcome": "send (this object would go to Braze), skip (nothing would: `reason`), "
        "needs_publish (a code would be published first) or needs_customer (the customer would "
        "be looked up first)",
        "reason": "why not send: no_consent, no_identifier, no_code, filtered_out, ...",
        "detail": "the reason in words",
        "braze_user_key": "the Braze user it would update",
    },
    "LiquidSnippets": {"snippets": "one per mapped attribute"},
    "LiquidSnippet": {
        "attribute": "the Braze custom attribute",
        "source": "the event field it comes from",
        "tag": "the plain Liquid tag",
        "with_default": "the tag with a fallback (dates formatted for people)",
        "abort_when_blank": "a tag that cancels the message when the attribute is blank",
    },
    "EventDetail": {"deliveries": "the deliveries it created"},
    "ReplayRead": {
        "id": "the replay's id",
        "requested_at": "when it was asked for (UTC)",
        "filter": "what it covers, as given",
        "force": "also sends values Braze already has",
        "started_at": "when a worker (or the request itself) began it",
        "finished_at": "when it was done, canceled or failed",
        "canceled_at": "when it was canceled",
    },
    "ReplayPlan": {
        "by_distribution": "the count per distribution id",
        "by_status": "the count per delivery status",
    },
    "ReplayQueued": {
        "replay_id": "the replay recorded for it (its attempts carry this id)",
        "delivery_id": "the delivery queued again",
        "status": "the delivery's status now: pending",
    },
    "BulkFilter": {"distribution_id": "only this distribution's deliveries"},
    "BulkReplayRequest": {"filter": "which settled deliveries: at least one key"},
    "PlanRequest": {"filter": "which settled deliveries: at least one key"},
    "RunSummary": {
        "id": "the run's id",
        "distribution_id": "the distribution it sends",
        "distribution_version": "the distribution's version when the run was asked for",
        "status": "scheduled, running, done, canceled or failed",
        "audience_kind": "segment_id, customer_ids or source_ids",
        "campaign": "the campaign codes are published from",
        "delay_seconds": "seconds it waited between the request and the start",
        "scheduled_at": "when it starts (or started)",
        "created_at": "when it was asked for (UTC)",
        "started_at": "when a worker began paging the audience",
        "finished_at": "when it was done, canceled or failed",
        "canceled_at": "when it was canceled",
        "canceled_by": "the name of the token that canceled it",
        "error": "why it failed, or the last Voucherify error while it retries",
    },
    "RunDetail": {"audience": "the audience as asked for"},
    "Progress": {
        "delivered": "deliveries Braze took",
        "skipped": "deliveries skipped",
        "failed": "deliveries that failed",
    },
    "Tally": {"total": "how many"},
    "WebhookAccepted": {"deliveries": "deliveries created (one per matching distribution)"},
}


def describe(schema: str, field: str) -> str | None:
    """The description of `field` of `schema`: its own, else the one its name has."""
    for name in (schema, *_PARENTS.get(schema, ())):
        if field in BY_SCHEMA.get(name, {}):
            return BY_SCHEMA[name][field]
    return BY_NAME.get(field)


# Models that extend others (pydantic repeats the fields in each schema).
_PARENTS: dict[str, tuple[str, ...]] = {
    "EventDetail": ("EventSummary",),
    "DeliveryDetail": ("DeliverySummary",),
    "BrazeRequestDetail": ("BrazeRequestSummary",),
    "ReplayCanceled": ("ReplayRead",),
    "RunDetail": ("RunSummary",),
    "DistributionRead": ("DistributionConfig",),
}
