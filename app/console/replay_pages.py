"""/console/replays: build a filter, see the dry-run plan, confirm, watch progress, cancel.
The plan, the replay and the cancel are replay_service's, as for POST /api/v1/replays."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from app.console.auth import ActingDep, SignedInDep, field, read_form
from app.console.pages import render
from app.db.session import SessionDep
from app.delivery.store import withdrawal
from app.distributions import repository as distributions
from app.errors import VoucherRelayError
from app.ops import replay_service
from app.ops.replay_schemas import BulkFilter, ReplayRead

router = APIRouter(prefix="/console/replays", include_in_schema=False)

FILTER_FIELDS = ("distribution_id", "status", "event_type", "braze_user_key", "since", "until")
SETTLED = ("delivered", "skipped", "failed", "dead")
ACTIVE = ("queued", "running")


@router.get("")
async def replays(
    request: Request, session: SessionDep, user: SignedInDep, cursor: str | None = None
) -> HTMLResponse:
    rows, next_cursor = await replay_service.page(
        session=session, limit=30, cursor=cursor, kind=None, status=None
    )
    return render(
        request,
        "replays.html",
        user,
        rows=[ReplayRead.model_validate(r) for r in rows],
        next_cursor=next_cursor,
        values={},
        errors=[],
        settled=SETTLED,
        distributions=await distributions.list_all(session, include_deleted=True),
    )


def _filter(form: dict[str, list[str]]) -> BulkFilter:
    given: dict[str, Any] = {name: field(form, name) for name in FILTER_FIELDS}
    return BulkFilter.model_validate({k: v for k, v in given.items() if v})


@router.post("/plan")
async def plan(request: Request, session: SessionDep, user: ActingDep) -> HTMLResponse:
    form = await read_form(request)
    values = {name: field(form, name) for name in (*FILTER_FIELDS, "force")}
    try:
        scope = _filter(form)
        planned = await replay_service.plan_bulk(
            session=session, scope=scope, settings=request.app.state.settings
        )
    except ValidationError as exc:
        errors = [f"{'.'.join(map(str, e['loc'])) or 'filter'}: {e['msg']}" for e in exc.errors()]
        return await _again(request, session, user, values, errors)
    except VoucherRelayError as exc:
        return await _again(request, session, user, values, [exc.message])
    return render(request, "replay_plan.html", user, plan=planned, values=values)


async def _again(
    request: Request, session: Any, user: Any, values: dict[str, str], errors: list[str]
) -> HTMLResponse:
    rows, next_cursor = await replay_service.page(
        session=session, limit=30, cursor=None, kind=None, status=None
    )
    return render(
        request,
        "replays.html",
        user,
        rows=[ReplayRead.model_validate(r) for r in rows],
        next_cursor=next_cursor,
        values=values,
        errors=errors,
        settled=SETTLED,
        status_code=422,
        distributions=await distributions.list_all(session, include_deleted=True),
    )


@router.post("")
async def start(request: Request, session: SessionDep, user: ActingDep) -> Response:
    form = await read_form(request)
    values = {name: field(form, name) for name in (*FILTER_FIELDS, "force")}
    try:
        replay = await replay_service.request_bulk(
            session=session,
            scope=_filter(form),
            force=values["force"] == "on",
            principal=user.principal,
            settings=request.app.state.settings,
        )
    except ValidationError as exc:
        return await _again(request, session, user, values, [str(exc)])
    except VoucherRelayError as exc:
        return await _again(request, session, user, values, [exc.message])
    return RedirectResponse(f"/console/replays/{replay.id}", 303)


@router.get("/{replay_id:uuid}")
@router.get("/{replay_id:uuid}/progress")
async def replay(
    request: Request, replay_id: uuid.UUID, session: SessionDep, user: SignedInDep
) -> HTMLResponse:
    """The replay's page, or (polled by it while the replay works) its progress alone."""
    found = ReplayRead.model_validate(
        await replay_service.get(session=session, replay_id=replay_id)
    )
    part = "replay_progress.html" if request.url.path.endswith("/progress") else "replay.html"
    return render(request, part, user, r=found, active=ACTIVE)


@router.post("/{replay_id:uuid}/cancel")
async def cancel(
    request: Request, replay_id: uuid.UUID, session: SessionDep, user: ActingDep,
    background: BackgroundTasks,
) -> Response:  # fmt: skip
    replay = await replay_service.cancel(
        session=session, replay_id=replay_id, principal=user.principal
    )
    if replay.withdrawing:  # as POST /api/v1/replays/{id}/cancel: after the answer
        background.add_task(
            withdrawal.carry_out_on, request.app.state.engine, withdrawal.REPLAY, replay.id
        )
    return RedirectResponse(f"/console/replays/{replay_id}", 303)
