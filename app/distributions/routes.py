"""/api/v1/distributions and /api/v1/fields: HTTP in, HTTP out."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Body, Query, Request, status
from pydantic import AfterValidator

from app.api.auth import OpsAuthDep, OpsWriterDep
from app.db.session import SessionDep
from app.delivery.store.queue_change import carry_out_on
from app.distributions import preview as preview_service
from app.distributions import repository, service
from app.distributions.fields import FIELDS, NOTES
from app.distributions.models import Distribution
from app.distributions.schemas import (
    DistributionConfig,
    DistributionList,
    DistributionPatch,
    DistributionRead,
    FieldCatalogue,
    LiquidSnippets,
    PreviewResult,
)
from app.distributions.triggers import known_trigger
from app.errors import OPS_ERROR_RESPONSES

router = APIRouter(prefix="/api/v1", tags=["distributions"], responses=OPS_ERROR_RESPONSES)


@router.get("/fields", summary="Voucherify fields that can be mapped to Braze attributes")
async def fields(_: OpsAuthDep) -> FieldCatalogue:
    return FieldCatalogue(fields=list(FIELDS), notes=NOTES)


@router.post("/distributions", status_code=status.HTTP_201_CREATED, summary="Create")
async def create(
    body: DistributionConfig, session: SessionDep, _: OpsWriterDep
) -> DistributionRead:
    return service.read_model(await service.create(session=session, config=body))


@router.get("/distributions", summary="List, optionally by status and trigger")
async def list_distributions(
    session: SessionDep,
    _: OpsAuthDep,
    status: Literal["active", "paused"] | None = None,
    # As documented (an enum): a typo is a 422, not an empty list.
    trigger: Annotated[str, AfterValidator(known_trigger)] | None = None,
    include_deleted: bool = Query(default=False, description="also list deleted ones"),
    name: str | None = Query(default=None, description="only the distributions of this name"),
) -> DistributionList:
    rows = await repository.list_all(
        session, status=status, trigger=trigger, include_deleted=include_deleted
    )
    # Names are few and unique among live distributions: filtered here, not in SQL.
    return DistributionList(
        items=[service.read_model(row) for row in rows if name is None or row.name == name]
    )


@router.get("/distributions/{distribution_id}", summary="Get one (also when deleted)")
async def get(distribution_id: uuid.UUID, session: SessionDep, _: OpsAuthDep) -> DistributionRead:
    return service.read_model(
        await service.get_or_404(session=session, distribution_id=distribution_id)
    )


@router.put("/distributions/{distribution_id}", summary="Replace (the version goes up)")
async def replace(
    distribution_id: uuid.UUID, body: DistributionConfig, session: SessionDep, _: OpsWriterDep,
    request: Request, background: BackgroundTasks,
) -> DistributionRead:  # fmt: skip
    updated = await service.replace(session=session, distribution_id=distribution_id, config=body)
    return _answer(updated, request, background)


@router.patch("/distributions/{distribution_id}", summary="Change some fields (version goes up)")
async def patch(
    distribution_id: uuid.UUID, body: DistributionPatch, session: SessionDep, _: OpsWriterDep,
    request: Request, background: BackgroundTasks,
) -> DistributionRead:  # fmt: skip
    updated = await service.patch(session=session, distribution_id=distribution_id, changes=body)
    return _answer(updated, request, background)


@router.post("/distributions/{distribution_id}/pause", summary="Stop matching new events")
async def pause(
    distribution_id: uuid.UUID, session: SessionDep, _: OpsWriterDep, request: Request,
    background: BackgroundTasks,
) -> DistributionRead:  # fmt: skip
    updated = await service.set_status(
        session=session, distribution_id=distribution_id, status="paused"
    )
    return _answer(updated, request, background)


@router.post("/distributions/{distribution_id}/resume", summary="Match new events again")
async def resume(
    distribution_id: uuid.UUID, session: SessionDep, _: OpsWriterDep, request: Request,
    background: BackgroundTasks,
) -> DistributionRead:  # fmt: skip
    updated = await service.set_status(
        session=session, distribution_id=distribution_id, status="active"
    )
    return _answer(updated, request, background)


@router.delete("/distributions/{distribution_id}", summary="Soft delete (history stays readable)")
async def delete(
    distribution_id: uuid.UUID, session: SessionDep, _: OpsWriterDep, request: Request,
    background: BackgroundTasks,
) -> DistributionRead:  # fmt: skip
    deleted = await service.soft_delete(session=session, distribution_id=distribution_id)
    return _answer(deleted, request, background)


def _answer(
    distribution: Distribution, request: Request, background: BackgroundTasks
) -> DistributionRead:
    """The distribution as stored; a change of its queue (a pause, resume or delete) is carried
    out in batches once the answer is sent (and its transaction committed)."""
    if distribution.queue_change is not None:
        background.add_task(carry_out_on, request.app.state.engine, distribution.id)
    return service.read_model(distribution)


@router.post(
    "/distributions/{distribution_id}/preview",
    summary="An event body in, the exact Braze object (or why not) out; nothing stored or sent",
    description="The body is checked as the webhook intake checks it: one intake would refuse "
    "(not a v2024-01-01 envelope, a legacy v2018-08-01 body) gets 400 saying why.",
)
async def preview(
    distribution_id: uuid.UUID,
    session: SessionDep,
    _: OpsAuthDep,
    envelope: Annotated[dict[str, Any], Body(description="a Voucherify webhook body")],
) -> PreviewResult:
    distribution = await service.get_or_404(session=session, distribution_id=distribution_id)
    return preview_service.preview(
        config=service.to_config(distribution), envelope=preview_service.check_envelope(envelope)
    )


@router.get("/distributions/{distribution_id}/liquid", summary="Liquid snippets for each attribute")
async def liquid(distribution_id: uuid.UUID, session: SessionDep, _: OpsAuthDep) -> LiquidSnippets:
    distribution = await service.get_or_404(session=session, distribution_id=distribution_id)
    return preview_service.liquid(
        distribution_id=distribution.id, config=service.to_config(distribution)
    )
