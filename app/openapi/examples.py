"""Example values for the OpenAPI document: one per schema (a response or request body), taken
from a sandbox run (`make sandbox`), and one error body per status. `tests/test_openapi_docs.py`
checks each against its schema, so they cannot drift from the models."""

from __future__ import annotations

from typing import Any

DISTRIBUTION_ID = "9549df65-b763-48e3-b89b-5b16dc2ef29a"
RUN_DISTRIBUTION_ID = "6c4917e1-fdff-42bb-92a1-d7934f125e94"
REPLAY_ID = "fd871b14-a645-4d23-a57f-dea79b623b14"

DISTRIBUTION_CONFIG: dict[str, Any] = {
    "name": "welcome-code",
    "description": "Welcome code and its expiry for new members who opted in",
    "triggers": ["customer.segment.entered"],
    "filters": {"segment_id": "seg_Vq7Lm2Rt9Kx4Nb1Zc8Hs3Pw"},
    "code_source": {"type": "event"},
    "identity": {"type": "external_id", "path": "customer.source_id"},
    "consent": {"metadata_key": "braze_opt_in", "value": True},
    "mapping": [
        {"source": "voucher.code", "attribute": "welcome_code", "format": "raw"},
        {"source": "voucher.expiration_date", "attribute": "welcome_code_expires_at",
         "format": "iso_datetime"},
    ],
    "action": "set",
    "update_existing_only": False,
    "status": "active",
}  # fmt: skip
DISTRIBUTION_READ: dict[str, Any] = DISTRIBUTION_CONFIG | {
    "filters": {"segment_id": "seg_Vq7Lm2Rt9Kx4Nb1Zc8Hs3Pw", "campaign": None,
                "custom_event": None},
    "id": DISTRIBUTION_ID,
    "version": 1,
    "created_at": "2026-12-04T17:09:11.912000Z",
    "updated_at": "2026-12-04T17:09:11.912000Z",
    "deleted_at": None,
}  # fmt: skip
EVENT_SUMMARY: dict[str, Any] = {
    "id": 1,
    "voucherify_event_id": "evcus_0f27c1d9a4b5e6f701",
    "source_id": "distr_7Kq2LmV9xRt4Np1cZs8Wd3Ye",
    "source_object": "distribution",
    "send_out_id": "whs_0f27c1d9a4b5e6f7a1",
    "event_type": "customer.segment.entered",
    "customer_id": "cust_8fN2kQ4rT6vX1zB3mP5sL7wY",
    "customer_source_id": "braze-usr-10042",
    "event_created_at": "2026-03-10T09:00:03.530000Z",
    "received_at": "2026-03-10T09:00:03.702094Z",
    "signature_result": "valid_raw",
    "outcome": "matched",
    "deliveries_created": 1,
}
# A v2024-01-01 envelope as a distribution's webhook channel sends it (shortened).
WEBHOOK_BODY: dict[str, Any] = {
    "id": "whs_0f27c1d9a4b5e6f7a1",
    "project_id": "proj_Hq4T2bWm",
    "created_at": "2026-03-10T09:00:03.530Z",
    "type": "braze-welcome-code",
    "source": {"id": "distr_7Kq2LmV9xRt4Np1cZs8Wd3Ye", "object": "distribution",
               "target_url": "https://relay.example.com/webhooks/voucherify"},
    "event": {"id": "evcus_0f27c1d9a4b5e6f701", "type": "customer.segment.entered",
              "created_at": "2026-03-10T09:00:03.530Z",
              "entity_id": "cust_8fN2kQ4rT6vX1zB3mP5sL7wY",
              "group_id": "v-0f27c1d9a4b5e6f702", "event_source": {"channel": "INTERNAL"}},
    "data": {
        "customer": {"id": "cust_8fN2kQ4rT6vX1zB3mP5sL7wY", "source_id": "braze-usr-10042",
                     "name": "Mia Schneider", "email": "mia.schneider@example.com",
                     "metadata": {"country": "DE", "braze_opt_in": True},
                     "object": "customer"},
        "segment": {"id": "seg_Vq7Lm2Rt9Kx4Nb1Zc8Hs3Pw", "name": "New members DE",
                    "object": "segment"},
        "voucher": {"id": "v_3Jk8Pq1Rz5Tw9Xm2Lb7Nc4Vd6Hf0Gs", "code": "WELCOME-7QX2KD",
                    "campaign": "Welcome 10% Off", "type": "DISCOUNT_VOUCHER",
                    "expiration_date": "2026-04-09T21:59:59.000Z", "object": "voucher"},
    },
}  # fmt: skip
DELIVERY_SUMMARY: dict[str, Any] = {
    "id": 1,
    "distribution_id": DISTRIBUTION_ID,
    "distribution_version": 1,
    "event_id": 1,
    "run_id": None,
    "trigger": "webhook",
    "braze_user_key": "external_id:braze-usr-10042",
    "status": "delivered",
    "skip_reason": None,
    "attempts": 1,
    "next_attempt_at": "2026-03-10T09:00:03.702094Z",
    "last_error": None,
    "event_time": "2026-03-10T09:00:03.530000Z",
    "created_at": "2026-03-10T09:00:03.702094Z",
    "delivered_at": "2026-03-10T09:00:03.923446Z",
}
BRAZE_REQUEST_SUMMARY: dict[str, Any] = {
    "id": 1,
    "started_at": "2026-03-10T09:00:03.855383Z",
    "duration_ms": 16.9,
    "status_code": 201,
    "kind": "delivered",
    "objects": 1,
    "request_bytes": 135,
    "error": None,
}
ATTEMPT: dict[str, Any] = {
    "id": 1,
    "attempted_at": "2026-03-10T09:00:03.872864Z",
    "outcome": "delivered",
    "message": None,
    "omitted": None,
    "replay_id": None,
    "trigger": "webhook",
    "braze_request": BRAZE_REQUEST_SUMMARY,
}
REPLAY: dict[str, Any] = {
    "id": REPLAY_ID,
    "kind": "bulk",
    "trigger": "bulk",
    "status": "queued",
    "requested_by": "ops-team",
    "requested_at": "2026-03-10T11:05:15.983150Z",
    "filter": {"status": "dead", "since": "2026-03-10T09:00:00Z", "until": "2026-03-10T11:00:00Z"},
    "force": False,
    "total": 212,
    "matched": 0,
    "queued": 0,
    "skipped": {},
    "state_reset": 0,
    "started_at": None,
    "finished_at": None,
    "last_error": None,
    "batch_attempts": 0,
    "canceled_at": None,
    "canceled_by": None,
    "withdrawing": False,
    "withdrawn": 0,
}
PROGRESS: dict[str, Any] = {
    "audience_size": 3,
    "processed": 3,
    "published": 2,
    "delivered": 2,
    "pending": 0,
    "skipped": {"total": 1, "reasons": {"no_consent": 1}},
    "failed": {"total": 0, "reasons": {}},
}
RUN_SUMMARY: dict[str, Any] = {
    "id": 1,
    "distribution_id": RUN_DISTRIBUTION_ID,
    "distribution_version": 1,
    "status": "done",
    "audience_kind": "segment_id",
    "campaign": "Welcome 10% Off",
    "delay_seconds": 0,
    "scheduled_at": "2026-03-10T10:00:12.777091Z",
    "requested_by": "ops-team",
    "created_at": "2026-03-10T10:00:12.773702Z",
    "started_at": "2026-03-10T10:00:13.284981Z",
    "finished_at": "2026-03-10T10:00:14.331401Z",
    "canceled_at": None,
    "canceled_by": None,
    "resumed_at": None,
    "resumed_by": None,
    "resumes": 0,
    "error": None,
    "failures": 0,
    "next_try_at": None,
    "withdrawing": False,
    "withdrawn": 0,
    "progress": PROGRESS,
}
SNIPPET = "{{custom_attribute.${welcome_code}}}"

# By component schema name: what its example is.
SCHEMAS: dict[str, Any] = {
    "DistributionConfig": DISTRIBUTION_CONFIG,
    "DistributionPatch": {"mapping": [
        {"source": "voucher.code", "attribute": "welcome_code"},
        {"source": "voucher.expiration_date", "attribute": "welcome_code_expires_at",
         "format": "date"},
    ]},
    "DistributionRead": DISTRIBUTION_READ,
    "DistributionList": {"items": [DISTRIBUTION_READ]},
    "FieldCatalogue": {
        "fields": [{"source": "voucher.code",
                    "description": "The voucher code (mandatory in every set distribution)",
                    "example": "WELCOME-7QX2KD", "suggested_format": "string",
                    "events": "events that carry a voucher (publication, redemption, gift, "
                              "loyalty, +code)"}],
        "notes": ["Paths read the event's data; webhook.* reads the envelope."],
    },
    "PreviewResult": {
        "outcome": "send", "reason": None, "detail": None,
        "braze_user_key": "external_id:braze-usr-10042",
        "object": {"external_id": "braze-usr-10042", "welcome_code": "WELCOME-7QX2KD",
                   "welcome_code_expires_at": "2026-04-09T21:59:59.000Z"},
        "request_body": {"attributes": [{"external_id": "braze-usr-10042",
                                         "welcome_code": "WELCOME-7QX2KD",
                                         "welcome_code_expires_at": "2026-04-09T21:59:59.000Z"}]},
    },
    "LiquidSnippets": {"distribution_id": DISTRIBUTION_ID, "snippets": [{
        "attribute": "welcome_code", "source": "voucher.code", "tag": SNIPPET,
        "with_default": "{{custom_attribute.${welcome_code} | default: 'FALLBACK'}}",
        "abort_when_blank": "{% if " + SNIPPET + " == blank %}"
                            "{% abort_message('no welcome_code') %}{% endif %}",
    }]},
    "Page_EventSummary_": {"items": [EVENT_SUMMARY], "next_cursor": "MQ"},
    "EventDetail": EVENT_SUMMARY | {"envelope": WEBHOOK_BODY, "deliveries": [DELIVERY_SUMMARY]},
    "Page_DeliverySummary_": {"items": [DELIVERY_SUMMARY], "next_cursor": None},
    "DeliveryDetail": DELIVERY_SUMMARY | {
        "replay_id": None, "force": False, "attempts_log": [ATTEMPT],
        "attributes": {"external_id": "braze-usr-10042", "welcome_code": "WELCOME-7QX2KD"},
    },
    "BrazeRequestDetail": BRAZE_REQUEST_SUMMARY | {
        "response_body": '{"message":"success","attributes_processed":1}',
        "response_headers": {"content-type": "application/json", "x-ratelimit-limit": "3000",
                             "x-ratelimit-remaining": "2999"},
        "worker": "relay-worker-1:7461:6eee4d", "deliveries": [1],
    },
    "ReplayOptions": {"force": True},
    "ReplayQueued": {
        "replay_id": REPLAY_ID, "delivery_id": 1, "status": "pending", "state_reset": 0
    },
    "ReplayRead": REPLAY,
    "ReplayCanceled": REPLAY | {
        "status": "canceled", "finished_at": "2026-03-10T11:06:02.412810Z",
        "canceled_at": "2026-03-10T11:06:02.412810Z", "canceled_by": "ops-team",
        "withdrawing": True, "withdrawn": 0,
    },
    "Page_ReplayRead_": {"items": [REPLAY], "next_cursor": None},
    "DistributionReplayRequest": {"since": "2026-03-08T00:00:00Z", "force": False},
    "BulkReplayRequest": {"filter": {"status": "dead", "since": "2026-03-10T09:00:00Z",
                                     "until": "2026-03-10T11:00:00Z"}, "force": False},
    "PlanRequest": {"filter": {"status": "dead", "since": "2026-03-10T09:00:00Z"}},
    "ReplayPlan": {"count": 212, "by_distribution": {DISTRIBUTION_ID: 212},
                   "by_status": {"dead": 212}, "sample_ids": [812, 813, 814]},
    "RunCreate": {"audience": {"segment_id": "seg_Vq7Lm2Rt9Kx4Nb1Zc8Hs3Pw"},
                  "delay_seconds": 600},
    "RunDetail": RUN_SUMMARY | {"audience": {"segment_id": "seg_Vq7Lm2Rt9Kx4Nb1Zc8Hs3Pw"}},
    "Page_RunSummary_": {"items": [RUN_SUMMARY], "next_cursor": None},
    "WebhookAccepted": {"event_id": 1, "duplicate": False, "outcome": "matched", "deliveries": 1},
}  # fmt: skip

# One error body per status, as `app.main` answers them.
ERRORS: dict[int, dict[str, Any]] = {
    400: {"error": {"code": "invalid_json", "message": "the body is not valid JSON (Expecting "
                    "value); send a JSON body with Content-Type: application/json"}},
    401: {"error": {"code": "unauthorized", "message": "unknown bearer token"}},
    403: {"error": {"code": "forbidden", "message": "token 'grafana' is read-only; this needs "
                    "scope write"}},
    404: {"error": {"code": "not_found", "message": f"no distribution {DISTRIBUTION_ID}"}},
    409: {"error": {"code": "conflict", "message": f"distribution {DISTRIBUTION_ID} is deleted; "
                    "create a new one"}},
    413: {"error": {"code": "body_too_large", "message": "the body is over API_MAX_BODY_BYTES "
                    "(4194304 bytes)"}},
    415: {"error": {"code": "unsupported_media_type", "message": "the body was sent as "
                    "application/x-www-form-urlencoded; send a JSON body with Content-Type: "
                    "application/json"}},
    422: {"error": {"code": "validation_error", "message": "the request is invalid",
                    "details": [{"loc": ["body", "mapping", 1, "format"],
                                 "message": "Input should be 'raw', 'string', 'iso_datetime', "
                                            "'date', 'minor_units_to_decimal', 'integer' or "
                                            "'boolean'", "type": "literal_error"}]}},
    503: {"error": {"code": "database_unavailable",
                    "message": "the database is unavailable; retry later"}},
}  # fmt: skip

READY: dict[str, Any] = {
    "status": "ready",
    "checks": {"database": {"ok": True}, "schema": {"ok": True, "revision": "0012",
               "head": "0012"}, "braze": {"ok": True, "configured": True}},
    "not_configured": [{"settings": ["VOUCHERIFY_APP_ID", "VOUCHERIFY_APP_TOKEN"],
                        "disables": "the Voucherify API: codes of `code_source: publish`, "
                                    "customer look-ups and manual runs wait"}],
}  # fmt: skip
NOT_READY: dict[str, Any] = {
    "status": "not_ready",
    "checks": {"database": {"ok": True}, "schema": {
        "ok": False, "revision": None, "head": "0012",
        "error": "the database schema is not migrated (this code needs revision 0012): run "
                 "`voucher-relay migrate` (or `voucher-relay serve --migrate`)"}},
    "not_configured": [],
}  # fmt: skip
METRICS = (
    "# HELP voucher_relay_queue_due_deliveries pending deliveries whose time has come\n"
    "# TYPE voucher_relay_queue_due_deliveries gauge\n"
    "voucher_relay_queue_due_deliveries 0.0\n"
)
