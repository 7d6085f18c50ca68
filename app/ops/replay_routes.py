"""/api/v1 replays of an event, a distribution and a bulk filter, with plan, progress and cancel.

Every POST needs a write token (a plan too: it is the first half of a replay); progress and the
list can be read with a read token.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, BackgroundTasks, Body, Request

from app.api.auth import OpsAuthDep, OpsWriterDep
from app.api.pagination import Page
from app.api.params import Cursor, Limit, RowId
from app.config import Settings
from app.db.session import SessionDep
from app.delivery.store import withdrawal
from app.errors import OPS_ERROR_RESPONSES
from app.ops import replay_service
from app.ops.models import QUEUED
from app.ops.replay_schemas import (
    BulkReplayRequest,
    DistributionReplayRequest,
    PlanRequest,
    ReplayCanceled,
    ReplayOptions,
    ReplayPlan,
    ReplayRead,
)

router = APIRouter(prefix="/api/v1", tags=["replays"], responses=OPS_ERROR_RESPONSES)

ReplayKind = Literal["delivery", "event", "distribution", "bulk"]
ReplayStatus = Literal["queued", "running", "done", "canceled", "failed"]


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _wake_worker(request: Request, replay: ReplayRead) -> ReplayRead:
    """Deliveries queued inline go out at once with `serve`'s own worker."""
    if replay.queued:
        request.app.state.wake_worker()
    return replay


@router.post(
    "/events/{event_id}/replay", status_code=202,
    summary="Map a stored event again with the current distributions, and queue the deliveries",
)  # fmt: skip
async def replay_event(
    event_id: RowId, request: Request, session: SessionDep, principal: OpsWriterDep,
    options: Annotated[ReplayOptions | None, Body()] = None,
) -> ReplayRead:  # fmt: skip
    replay = await replay_service.replay_event(
        session=session, event_id=event_id, force=bool(options and options.force),
        principal=principal,
    )  # fmt: skip
    return _wake_worker(request, ReplayRead.model_validate(replay))


@router.post(
    "/distributions/{distribution_id}/replay", status_code=202,
    summary="Run a distribution again over the stored events of its triggers in a time window",
    description="Windows of at most REPLAY_INLINE_ROWS events run before the answer (status "
    "`done`); larger ones run in a worker (status `queued`: follow GET /api/v1/replays/{id}).",
)  # fmt: skip
async def replay_distribution(
    distribution_id: uuid.UUID, body: DistributionReplayRequest, request: Request,
    session: SessionDep, principal: OpsWriterDep,
) -> ReplayRead:  # fmt: skip
    replay = await replay_service.replay_distribution(
        session=session, distribution_id=distribution_id, request=body, principal=principal,
        settings=_settings(request),
    )  # fmt: skip
    return _wake_worker(request, ReplayRead.model_validate(replay))


@router.post(
    "/replays", status_code=202,
    summary="Replay every settled delivery a filter matches, in the background",
)  # fmt: skip
async def request_bulk(
    body: BulkReplayRequest, request: Request, session: SessionDep, principal: OpsWriterDep
) -> ReplayRead:
    replay = await replay_service.request_bulk(
        session=session, scope=body.filter, force=body.force, principal=principal,
        settings=_settings(request),
    )  # fmt: skip
    assert replay.status == QUEUED
    return ReplayRead.model_validate(replay)


@router.post("/replays/plan", summary="What a bulk replay of this filter would take up (dry run)")
async def plan_bulk(
    body: PlanRequest, request: Request, session: SessionDep, _: OpsWriterDep
) -> ReplayPlan:
    return await replay_service.plan_bulk(
        session=session, scope=body.filter, settings=_settings(request)
    )


@router.get("/replays", summary="Replays, newest first")
async def list_replays(
    session: SessionDep, _: OpsAuthDep, limit: Limit = 50, cursor: Cursor = None,
    kind: ReplayKind | None = None, status: ReplayStatus | None = None,
) -> Page[ReplayRead]:  # fmt: skip
    rows, next_cursor = await replay_service.page(
        session=session, limit=limit, cursor=cursor, kind=kind, status=status
    )
    return Page(items=[ReplayRead.model_validate(r) for r in rows], next_cursor=next_cursor)


# {replay_id:uuid}: a path that holds no UUID is no replay, so that GET /replays/plan is a 405
# (that path takes POST) rather than a 422 for a replay id "plan".
@router.get("/replays/{replay_id:uuid}", summary="One replay: its filter, status and counts so far")
async def get_replay(replay_id: uuid.UUID, session: SessionDep, _: OpsAuthDep) -> ReplayRead:
    return ReplayRead.model_validate(await replay_service.get(session=session, replay_id=replay_id))


@router.post(
    "/replays/{replay_id:uuid}/cancel",
    summary="Stop a replay and withdraw the deliveries it queued that have not gone out yet",
    description="Answers at once: `withdrawing` is true while its waiting deliveries are being "
    "withdrawn (no worker sends them meanwhile), `withdrawn` counts them so far: follow GET "
    "/api/v1/replays/{id}.",
)
async def cancel_replay(
    replay_id: uuid.UUID, request: Request, session: SessionDep, principal: OpsWriterDep,
    background: BackgroundTasks,
) -> ReplayCanceled:  # fmt: skip
    replay = await replay_service.cancel(session=session, replay_id=replay_id, principal=principal)
    if replay.withdrawing:  # once the answer is sent and the cancel committed
        background.add_task(
            withdrawal.carry_out_on, request.app.state.engine, withdrawal.REPLAY, replay.id
        )
    return ReplayCanceled.model_validate(replay)
