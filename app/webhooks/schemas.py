from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class WebhookAccepted(BaseModel):
    """The answer to Voucherify: sent only after the event and its deliveries are committed."""

    event_id: int = Field(description="the stored event (GET /api/v1/events/{event_id})")
    duplicate: bool = Field(description="already stored earlier: nothing new was created")
    outcome: Literal["matched", "unmatched", "ignored", "failed"] = Field(
        description="matched: deliveries created; unmatched: no active distribution listens; "
        "ignored: an event type voucher-relay does not handle; failed: stored, but its "
        "deliveries could not be made (the service log says why): replay it once fixed"
    )
    deliveries: int
