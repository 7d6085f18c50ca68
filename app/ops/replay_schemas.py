"""What the replay endpoints take and answer."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from app.api.params import Moment

# Only settled deliveries are replayed: pending and in-flight ones are queued already.
SettledStatus = Literal["delivered", "skipped", "failed", "dead"]


class _Request(BaseModel):
    """A request body: an unknown field is refused (a typo must not run a real replay)."""

    model_config = ConfigDict(extra="forbid")


class ReplayOptions(_Request):
    # Strict: "yes" or 1 must not start a forced replay.
    force: StrictBool = Field(default=False, description="send even values Braze already has")


class Window(_Request):
    since: Moment | None = Field(default=None, description="from this time (inclusive)")
    until: Moment | None = Field(default=None, description="until this time (exclusive)")

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.since and self.since > datetime.now(UTC):
            raise ValueError(f"since ({self.since.isoformat()}) is in the future")
        if self.since and self.until and self.since >= self.until:
            raise ValueError("since must be before until")
        return self


class DistributionReplayRequest(Window, ReplayOptions):
    """Events of the distribution's triggers received in [since, until) (until: now)."""

    since: Moment = Field(description="from this time (inclusive)")


class BulkFilter(Window):
    """Settled deliveries: every key optional, at least one given; all given must hold."""

    distribution_id: uuid.UUID | None = None
    status: SettledStatus | None = Field(default=None, description="default: every settled one")
    event_type: str | None = Field(default=None, description="the type of the delivery's event")
    braze_user_key: str | None = Field(default=None, description="e.g. external_id:u-1")
    since: Moment | None = Field(default=None, description="created at or after (inclusive)")
    until: Moment | None = Field(default=None, description="created before (exclusive)")

    @model_validator(mode="after")
    def _not_everything(self) -> BulkFilter:
        if not self.model_dump(exclude_none=True):
            raise ValueError("give at least one filter key (replaying everything is not offered)")
        return self


class BulkReplayRequest(ReplayOptions):
    filter: BulkFilter


class PlanRequest(_Request):
    filter: BulkFilter


class ReplayPlan(BaseModel):
    count: int = Field(description="settled deliveries the replay would take up")
    by_distribution: dict[str, int]
    by_status: dict[str, int]
    sample_ids: list[int] = Field(description="up to 20 of them, oldest first")


class ReplayRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: str = Field(description="delivery, event, distribution or bulk")
    trigger: str = Field(description="what the attempts it causes count as: manual or bulk")
    status: str = Field(
        description="queued, running, done, canceled, or failed (one batch failed "
        "REPLAY_MAX_BATCH_ATTEMPTS times: last_error says why)"
    )
    requested_by: str = Field(description="the name of the token that asked")
    requested_at: datetime
    filter: dict[str, Any]
    force: bool
    total: int | None = Field(description="rows covered, counted when asked (background ones)")
    matched: int = Field(description="rows looked at so far")
    queued: int = Field(description="deliveries queued so far")
    skipped: dict[str, int] = Field(description="rows that queued nothing, by reason")
    state_reset: int = Field(
        description="forced replays: recorded attribute values whose event time was later than "
        "the replayed delivery's, set back to it so that the forced value wins over `stale` "
        "(each delivery's attempt log names them)"
    )
    started_at: datetime | None
    finished_at: datetime | None
    last_error: str | None = Field(
        description="the last failed batch: which, how many tries, the error"
    )
    batch_attempts: int = Field(description="failed tries of the current batch so far")
    canceled_at: datetime | None
    canceled_by: str | None = Field(description="the name of the token that canceled it")
    withdrawing: bool = Field(
        description="canceled, and deliveries it queued still wait or are on their way: they "
        "are being skipped as replay_canceled, in batches, and no worker sends them meanwhile"
    )
    withdrawn: int = Field(
        description="deliveries the replay queued that had not gone out at its cancel, skipped "
        "as replay_canceled so far"
    )


class ReplayCanceled(ReplayRead):
    """The replay as its cancel answers, at once: `withdrawing` while what it queued is being
    withdrawn after the answer (follow GET /api/v1/replays/{id}); `withdrawn` is 0 then."""
