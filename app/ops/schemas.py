"""What the ops API shows of the audit trail."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Row(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class EventSummary(_Row):
    id: int
    voucherify_event_id: str
    source_id: str
    source_object: str
    send_out_id: str | None
    event_type: str
    customer_id: str | None
    customer_source_id: str | None
    event_created_at: datetime | None
    received_at: datetime
    signature_result: str
    outcome: str
    deliveries_created: int


class DeliverySummary(_Row):
    id: int
    distribution_id: uuid.UUID
    distribution_version: int
    event_id: int | None
    run_id: int | None = Field(default=None, description="the manual run that created it")
    trigger: str
    braze_user_key: str | None
    status: str
    skip_reason: str | None
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    event_time: datetime | None
    created_at: datetime
    delivered_at: datetime | None


class EventDetail(EventSummary):
    envelope: dict[str, Any] | None = Field(description="the webhook body, parsed")
    deliveries: list[DeliverySummary]


class BrazeRequestSummary(_Row):
    id: int
    started_at: datetime
    duration_ms: float
    status_code: int | None
    kind: str
    objects: int
    request_bytes: int
    error: str | None


class BrazeRequestDetail(BrazeRequestSummary):
    response_body: str | None
    response_headers: dict[str, Any] | None
    worker: str | None
    deliveries: list[int] = Field(description="the deliveries this request carried")


class Attempt(_Row):
    id: int
    attempted_at: datetime
    outcome: str
    message: str | None
    omitted: dict[str, Any] | None
    replay_id: uuid.UUID | None = Field(default=None, description="the replay that caused it")
    trigger: str | None = Field(
        default=None,
        description="manual or bulk when a replay caused it, else what created the delivery",
    )
    braze_request: BrazeRequestSummary | None = None


class DeliveryDetail(DeliverySummary):
    replay_id: uuid.UUID | None = Field(description="the replay that last queued it again")
    attributes: dict[str, Any] | None = Field(description="the Braze object this delivery sends")
    force: bool
    attempts_log: list[Attempt]
