"""Runs as they cross the API (DESIGN.md section 2: the run body scripts rely on)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    model_validator,
)

# Voucherify holds a manual distribution 10 minutes so that it can still be stopped (reference 3).
DEFAULT_DELAY_SECONDS = 600
MAX_DELAY_SECONDS = 7 * 24 * 3600
MAX_LISTED_CUSTOMERS = 10_000

CustomerRef = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
RunStatus = Literal["scheduled", "running", "done", "canceled", "failed"]


class Audience(BaseModel):
    """Who gets the codes: exactly one of a segment, customer ids or customer source_ids."""

    model_config = ConfigDict(extra="forbid")

    segment_id: CustomerRef | None = Field(default=None, description="a Voucherify segment id")
    customer_ids: list[CustomerRef] | None = Field(
        default=None, min_length=1, max_length=MAX_LISTED_CUSTOMERS,
        description="Voucherify customer ids (cust_...)",
    )  # fmt: skip
    source_ids: list[CustomerRef] | None = Field(
        default=None, min_length=1, max_length=MAX_LISTED_CUSTOMERS,
        description="customer source_ids (your own ids)",
    )  # fmt: skip

    @model_validator(mode="after")
    def _exactly_one(self) -> Audience:
        given = [k for k in ("segment_id", "customer_ids", "source_ids") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of segment_id, customer_ids, source_ids"
                + (f" (got {', '.join(given)})" if given else "")
            )
        # A customer listed twice gets one delivery: keep the first mention.
        for key in ("customer_ids", "source_ids"):
            listed = getattr(self, key)
            if listed:
                setattr(self, key, list(dict.fromkeys(listed)))
        return self

    def members(self) -> list[str] | None:
        """The listed customers, None for a segment."""
        return self.customer_ids or self.source_ids


class RunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    audience: Audience
    delay_seconds: int | None = Field(
        default=None, ge=0, le=MAX_DELAY_SECONDS,
        description=f"wait before sending (default {DEFAULT_DELAY_SECONDS}; less needs send_now)",
    )  # fmt: skip
    # Strict: "yes" or 1 must not send a run at once.
    send_now: StrictBool = Field(
        default=False, description="allow a delay under 600 s (delay_seconds 0: at once)"
    )

    @model_validator(mode="after")
    def _delay(self) -> RunCreate:
        if self.delay_seconds is None:
            # The contract's default, send_now or not: send_now only allows a shorter delay.
            self.delay_seconds = DEFAULT_DELAY_SECONDS
        if self.delay_seconds < DEFAULT_DELAY_SECONDS and not self.send_now:
            raise ValueError(
                f"delay_seconds {self.delay_seconds} is under {DEFAULT_DELAY_SECONDS}: the delay "
                'is the time to stop a mistaken run; add "send_now": true to send sooner'
            )
        return self


class Tally(BaseModel):
    total: int
    reasons: dict[str, int] = Field(description="e.g. no_consent, no_identifier")


class Progress(BaseModel):
    audience_size: int | None = Field(description="customers in the audience (null until known)")
    processed: int = Field(description="audience members given a delivery so far")
    published: int = Field(description="codes published (or read back) from the campaign")
    delivered: int
    pending: int = Field(description="deliveries still on their way")
    skipped: Tally
    failed: Tally


class RunSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    distribution_id: uuid.UUID
    distribution_version: int
    status: RunStatus
    audience_kind: Literal["segment_id", "customer_ids", "source_ids"]
    campaign: str | None
    delay_seconds: int
    scheduled_at: datetime
    requested_by: str = Field(description="the ops token that asked for it")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    canceled_at: datetime | None
    canceled_by: str | None
    resumed_at: datetime | None = Field(description="the last resume of a run that gave up")
    resumed_by: str | None = Field(description="the ops token of the last resume")
    resumes: int = Field(description="how many times the run was resumed")
    error: str | None
    failures: int = Field(
        description="Voucherify unavailable this many times in a row while paging the audience "
        "(0 again after a stored page); at RUN_MAX_FAILURES the run fails. A failed run with "
        "failures above 0 gave up on that and can be resumed"
    )
    next_try_at: datetime | None = Field(
        description="while the run waits out Voucherify being unavailable: its next try"
    )
    withdrawing: bool = Field(
        description="canceled, and some of its deliveries still wait or are on their way: they "
        "are being skipped as run_canceled, in batches, and no worker sends them meanwhile"
    )
    withdrawn: int = Field(
        description="deliveries that had not gone out when the run was canceled, skipped as "
        "run_canceled so far"
    )
    progress: Progress


class RunDetail(RunSummary):
    audience: dict[str, Any]
