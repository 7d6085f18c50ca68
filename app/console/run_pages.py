"""/console/runs: start a run for a segment or listed customers with its delay, follow its
progress, cancel it within the delay, resume one that gave up on a Voucherify outage. The
runs service decides each of these, as for /api/v1/runs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from app.api.pagination import page
from app.console.auth import ActingDep, SignedInDep, field, read_form
from app.console.distribution_pages import uuid_or_none
from app.console.pages import render
from app.db.session import SessionDep
from app.delivery.store import withdrawal
from app.distributions import repository as distributions
from app.errors import VoucherRelayError
from app.runs import repository, service
from app.runs.models import Run
from app.runs.schemas import DEFAULT_DELAY_SECONDS, RunCreate

router = APIRouter(prefix="/console/runs", include_in_schema=False)

ACTIVE = ("scheduled", "running")


@router.get("")
async def runs(
    request: Request, session: SessionDep, user: SignedInDep, cursor: str | None = None
) -> HTMLResponse:
    return await _list(request, session, user, cursor=cursor, values={}, errors=[])


async def _list(
    request: Request,
    session: Any,
    user: Any,
    *,
    cursor: str | None,
    values: dict[str, str],
    errors: list[str],
    status_code: int = 200,
) -> HTMLResponse:
    query = repository.runs_query(distribution_id=None, status=None)
    rows, next_cursor = await page(session, query, Run.id, limit=30, cursor=cursor)
    return render(
        request,
        "runs.html",
        user,
        rows=await service.summaries(session=session, runs=rows),
        next_cursor=next_cursor,
        values=values,
        errors=errors,
        status_code=status_code,
        distributions=await distributions.list_all(session),
        default_delay=DEFAULT_DELAY_SECONDS,
    )


@router.post("")
async def start(request: Request, session: SessionDep, user: ActingDep) -> Response:
    form = await read_form(request)
    values = {
        name: field(form, name)
        for name in (
            "distribution_id",
            "audience",
            "segment_id",
            "members",
            "delay_seconds",
            "send_now",
        )
    }
    listed = [m.strip() for m in values["members"].replace(",", "\n").splitlines() if m.strip()]
    audience: dict[str, Any] = (
        {"segment_id": values["segment_id"]}
        if values["audience"] == "segment_id"
        else {values["audience"] or "source_ids": listed}
    )
    try:
        body = RunCreate.model_validate(
            {
                "audience": audience,
                "send_now": values["send_now"] == "on",
                "delay_seconds": int(values["delay_seconds"]) if values["delay_seconds"] else None,
            }
        )
        distribution_id = uuid_or_none(values["distribution_id"])
        if distribution_id is None:
            raise ValueError("choose a distribution")
        run = await service.schedule(
            session=session,
            distribution_id=distribution_id,
            request=body,
            principal=user.principal,
        )
    except ValidationError as exc:
        errors = [e["msg"].removeprefix("Value error, ") for e in exc.errors()]
        return await _list(
            request, session, user, cursor=None, values=values, errors=errors, status_code=422
        )
    except (ValueError, VoucherRelayError) as exc:
        message = exc.message if isinstance(exc, VoucherRelayError) else str(exc)
        return await _list(
            request, session, user, cursor=None, values=values, errors=[message], status_code=422
        )
    return RedirectResponse(f"/console/runs/{run.id}", 303)


@router.get("/{run_id:int}")
@router.get("/{run_id:int}/progress")
async def run(
    request: Request, run_id: int, session: SessionDep, user: SignedInDep
) -> HTMLResponse:
    """The run's page, or (polled by it while the run works) its progress alone."""
    found = await service.get_or_404(session=session, run_id=run_id)
    detail = await service.detail(session=session, run=found)
    part = "run_progress.html" if request.url.path.endswith("/progress") else "run.html"
    return render(request, part, user, r=detail, active=ACTIVE)


@router.post("/{run_id:int}/cancel")
async def cancel(
    request: Request, run_id: int, session: SessionDep, user: ActingDep,
    background: BackgroundTasks,
) -> Response:  # fmt: skip
    run = await service.cancel(session=session, run_id=run_id, principal=user.principal)
    if run.withdrawing:  # as POST /api/v1/runs/{id}/cancel: after the answer
        background.add_task(
            withdrawal.carry_out_on, request.app.state.engine, withdrawal.RUN, run.id
        )
    return RedirectResponse(f"/console/runs/{run_id}", 303)


@router.post("/{run_id:int}/resume")
async def resume(run_id: int, session: SessionDep, user: ActingDep) -> Response:
    await service.resume(session=session, run_id=run_id, principal=user.principal)
    return RedirectResponse(f"/console/runs/{run_id}", 303)
