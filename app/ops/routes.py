"""/api/v1/events, /deliveries, /braze-requests: what happened to a customer's code."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel, Field

from app.api.auth import OpsAuthDep, OpsWriterDep
from app.api.pagination import Page, page
from app.api.params import Cursor, Limit, RowId, RowIdFilter, Since, Until
from app.braze.models import BrazeRequest
from app.db.session import SessionDep
from app.delivery.models import STATUSES, TRIGGERS, Delivery
from app.errors import OPS_ERROR_RESPONSES, NotFoundError, VoucherRelayError
from app.ops import repository
from app.ops.replay import replay_delivery
from app.ops.replay_schemas import ReplayOptions
from app.ops.schemas import (
    Attempt,
    BrazeRequestDetail,
    BrazeRequestSummary,
    DeliveryDetail,
    DeliverySummary,
    EventDetail,
    EventSummary,
)
from app.ops.statement_budget import bounded
from app.webhooks.matching import Outcome
from app.webhooks.models import WebhookEvent

router = APIRouter(prefix="/api/v1", tags=["audit"], responses=OPS_ERROR_RESPONSES)

DeliveryStatus = Literal["pending", "in_flight", "delivered", "skipped", "failed", "dead"]
DeliveryTrigger = Literal["webhook", "run", "manual", "bulk"]
assert set(STATUSES) == set(DeliveryStatus.__args__)  # type: ignore[attr-defined]
assert set(TRIGGERS) == set(DeliveryTrigger.__args__)  # type: ignore[attr-defined]


class BadWindowError(VoucherRelayError):
    status_code = 422
    code = "validation_error"


NARROW_EVENTS = "?customer=, ?type= or a shorter ?since=/?until= window"
NARROW_DELIVERIES = (
    "?braze_user_key=, ?event_id=, ?run_id=, ?distribution_id= or a shorter ?since=/?until= window"
)


def _timeout(request: Request) -> float:
    seconds: float = request.app.state.settings.ops_statement_timeout_seconds
    return seconds


def _window(since: datetime | None, until: datetime | None) -> None:
    if since and until and since >= until:
        raise BadWindowError("since must be before until")


@router.get("/events", summary="Stored webhooks, newest first")
async def list_events(
    request: Request, session: SessionDep, _: OpsAuthDep, limit: Limit = 50, cursor: Cursor = None,
    type: str | None = None, outcome: Outcome | None = None,
    customer: Annotated[str | None, Query(description="customer id or source_id")] = None,
    since: Since = None, until: Until = None,
) -> Page[EventSummary]:  # fmt: skip
    _window(since, until)
    query = repository.events_query(
        event_type=type, outcome=outcome, customer=customer, since=since, until=until
    )
    async with bounded(session, _timeout(request), narrow=NARROW_EVENTS):
        rows, next_cursor = await page(session, query, WebhookEvent.id, limit=limit, cursor=cursor)
    return Page(items=[EventSummary.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/events/{event_id}", summary="One stored webhook, with its deliveries")
async def get_event(event_id: RowId, session: SessionDep, _: OpsAuthDep) -> EventDetail:
    event = await session.get(WebhookEvent, event_id)
    if event is None:
        raise NotFoundError(f"no event {event_id}")
    envelope = None
    if event.raw_body is not None:
        try:
            envelope = orjson.loads(event.raw_body)
        except orjson.JSONDecodeError:
            envelope = None
    deliveries = await repository.event_deliveries(session, event_id)
    return EventDetail(
        **EventSummary.model_validate(event).model_dump(),
        envelope=envelope,
        deliveries=[DeliverySummary.model_validate(d) for d in deliveries],
    )


@router.get("/deliveries", summary="Deliveries, newest first")
async def list_deliveries(
    request: Request, session: SessionDep, _: OpsAuthDep, limit: Limit = 50, cursor: Cursor = None,
    distribution_id: uuid.UUID | None = None, status: DeliveryStatus | None = None,
    braze_user_key: Annotated[str | None, Query(description="e.g. external_id:u-1")] = None,
    trigger: DeliveryTrigger | None = None,
    event_id: RowIdFilter = None, run_id: RowIdFilter = None,
    since: Since = None, until: Until = None,
) -> Page[DeliverySummary]:  # fmt: skip
    _window(since, until)
    query = repository.deliveries_query(
        {"distribution_id": distribution_id, "status": status, "braze_user_key": braze_user_key,
         "trigger": trigger, "event_id": event_id, "run_id": run_id, "since": since,
         "until": until}
    )  # fmt: skip
    async with bounded(session, _timeout(request), narrow=NARROW_DELIVERIES):
        rows, next_cursor = await page(session, query, Delivery.id, limit=limit, cursor=cursor)
    return Page(items=[DeliverySummary.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/deliveries/{delivery_id}", summary="One delivery, with every attempt")
async def get_delivery(delivery_id: RowId, session: SessionDep, _: OpsAuthDep) -> DeliveryDetail:
    delivery = await session.get(Delivery, delivery_id)
    if delivery is None:
        raise NotFoundError(f"no delivery {delivery_id}")
    attempts = [
        Attempt(
            **Attempt.model_validate(attempt).model_dump(exclude={"braze_request", "trigger"}),
            braze_request=BrazeRequestSummary.model_validate(request) if request else None,
            trigger=replay_trigger or delivery.trigger,
        )
        for attempt, request, replay_trigger in await repository.attempts_of(session, delivery_id)
    ]
    return DeliveryDetail(
        **DeliverySummary.model_validate(delivery).model_dump(),
        attributes=delivery.attributes,
        force=delivery.force,
        replay_id=delivery.replay_id,
        attempts_log=attempts,
    )


class ReplayQueued(BaseModel):
    replay_id: uuid.UUID
    delivery_id: int
    status: Literal["pending"]
    state_reset: int = Field(
        description="with force: recorded attribute values whose event time was later than this "
        "delivery's, set back to it so that it wins over `stale` (its attempt log names them)"
    )


@router.post(
    "/deliveries/{delivery_id}/replay",
    status_code=202,
    summary="Send a settled delivery again (recorded as a replay by this token)",
)
async def replay_one(
    delivery_id: RowId,
    request: Request,
    session: SessionDep,
    principal: OpsWriterDep,
    options: Annotated[ReplayOptions | None, Body()] = None,
) -> ReplayQueued:
    replay = await replay_delivery(
        session=session, delivery_id=delivery_id, force=bool(options and options.force),
        principal=principal,
    )  # fmt: skip
    request.app.state.wake_worker()
    return ReplayQueued(
        replay_id=replay.id, delivery_id=delivery_id, status="pending",
        state_reset=replay.state_reset,
    )  # fmt: skip


@router.get("/braze-requests/{request_id}", summary="One Braze call and the deliveries it carried")
async def get_braze_request(
    request_id: RowId, session: SessionDep, _: OpsAuthDep
) -> BrazeRequestDetail:
    request = await session.get(BrazeRequest, request_id)
    if request is None:
        raise NotFoundError(f"no Braze request {request_id}")
    return BrazeRequestDetail(
        **BrazeRequestSummary.model_validate(request).model_dump(),
        response_body=request.response_body,
        response_headers=request.response_headers,
        worker=request.worker,
        deliveries=await repository.request_deliveries(session, request_id),
    )
