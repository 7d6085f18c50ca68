"""/api/v1/distributions/{id}/runs and /api/v1/runs: manual distributions."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, BackgroundTasks, Request, status

from app.api.auth import OpsAuthDep, OpsWriterDep
from app.api.pagination import Page, page
from app.api.params import Cursor, Limit, RowId
from app.db.session import SessionDep
from app.delivery.store import withdrawal
from app.errors import OPS_ERROR_RESPONSES
from app.runs import repository, service
from app.runs.models import Run
from app.runs.schemas import RunCreate, RunDetail, RunStatus, RunSummary

router = APIRouter(prefix="/api/v1", tags=["runs"], responses=OPS_ERROR_RESPONSES)


@router.post(
    "/distributions/{distribution_id}/runs",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send the distribution to a segment or listed customers, after a delay",
)
async def create_run(
    distribution_id: uuid.UUID, body: RunCreate, session: SessionDep, principal: OpsWriterDep
) -> RunDetail:
    run = await service.schedule(
        session=session, distribution_id=distribution_id, request=body, principal=principal
    )
    return await service.detail(session=session, run=run)


@router.get("/runs", summary="Runs, newest first")
async def list_runs(
    session: SessionDep, _: OpsAuthDep, limit: Limit = 50, cursor: Cursor = None,
    distribution_id: uuid.UUID | None = None, status: RunStatus | None = None,
) -> Page[RunSummary]:  # fmt: skip
    query = repository.runs_query(distribution_id=distribution_id, status=status)
    rows, next_cursor = await page(session, query, Run.id, limit=limit, cursor=cursor)
    return Page(items=await service.summaries(session=session, runs=rows), next_cursor=next_cursor)


@router.get("/runs/{run_id}", summary="One run and its progress")
async def get_run(run_id: RowId, session: SessionDep, _: OpsAuthDep) -> RunDetail:
    run = await service.get_or_404(session=session, run_id=run_id)
    return await service.detail(session=session, run=run)


@router.post(
    "/runs/{run_id}/cancel",
    summary="Stop a scheduled or running run",
    description="Answers at once: `withdrawing` is true while the run's waiting deliveries are "
    "being withdrawn (no worker sends them meanwhile), `withdrawn` counts them so far.",
)
async def cancel_run(
    run_id: RowId, request: Request, session: SessionDep, principal: OpsWriterDep,
    background: BackgroundTasks,
) -> RunDetail:  # fmt: skip
    run = await service.cancel(session=session, run_id=run_id, principal=principal)
    if run.withdrawing:  # once the answer is sent and the cancel committed
        engine = request.app.state.engine
        background.add_task(withdrawal.carry_out_on, engine, withdrawal.RUN, run.id)
    return await service.detail(session=session, run=run)


@router.post(
    "/runs/{run_id}/resume",
    summary="Continue a run that gave up because Voucherify was unavailable, from its checkpoint",
)
async def resume_run(run_id: RowId, session: SessionDep, principal: OpsWriterDep) -> RunDetail:
    run = await service.resume(session=session, run_id=run_id, principal=principal)
    return await service.detail(session=session, run=run)
