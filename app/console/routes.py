"""/console: sign-in, the overview, a customer, deliveries and events.

Pages read through the same repositories and services as /api/v1, and every action calls the
service function its API route calls: the console adds pages, not rules.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, get_args

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from markupsafe import escape

from app.api.auth import authenticate
from app.api.pagination import page
from app.console import distribution_pages, queries, replay_pages, run_pages, sessions
from app.console.auth import ActingDep, SignedInDep, SignInRequiredError, field, read_form
from app.console.pages import STATIC, render
from app.db.session import SessionDep
from app.delivery.models import STATUSES, TRIGGERS, Delivery
from app.distributions import repository as distributions
from app.errors import VoucherRelayError
from app.ops import repository
from app.ops import routes as audit
from app.ops.replay import replay_delivery
from app.webhooks.matching import Outcome
from app.webhooks.models import WebhookEvent

PREFIX = "/console"
router = APIRouter(prefix=PREFIX, include_in_schema=False)


def install(app: FastAPI) -> None:
    """Mount the console on `app`: its pages, its static files, sign-in redirects and error
    pages (after the app's own error handlers, which it keeps for every other path)."""
    for pages in (router, distribution_pages.router, replay_pages.router, run_pages.router):
        app.include_router(pages)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC), name="console-static")

    @app.exception_handler(SignInRequiredError)
    async def _sign_in(request: Request, _: SignInRequiredError) -> Response:
        if request.method == "GET":
            return RedirectResponse(f"{PREFIX}/sign-in?next={request.url.path}", 303)
        return HTMLResponse("sign in first", 401)

    # Domain errors (no such delivery, a run past its delay, a read-only token) as a page in
    # the console, and as the API's JSON everywhere else.
    api_answer = app.exception_handlers[VoucherRelayError]

    async def _domain_error(request: Request, exc: Exception) -> Response:
        if not request.url.path.startswith(f"{PREFIX}/") or not isinstance(exc, VoucherRelayError):
            answer = api_answer(request, exc)
            return answer if isinstance(answer, Response) else await answer
        return render(request, "error.html", None, status_code=exc.status_code, error=exc)

    app.add_exception_handler(VoucherRelayError, _domain_error)


@router.get("/sign-in")
async def sign_in_form(request: Request, next: str = PREFIX) -> HTMLResponse:
    return render(request, "sign_in.html", None, next=_local(next))


@router.post("/sign-in")
async def sign_in(request: Request, session: SessionDep) -> Response:
    form = await read_form(request)
    principal = authenticate(request.app.state.ops_tokens, field(form, "token"))
    if principal is None:
        return render(
            request,
            "sign_in.html",
            None,
            status_code=401,
            next=_local(field(form, "next")),
            error="That token is not one of OPS_API_TOKENS.",
        )
    session_id = await sessions.start(
        session=session,
        principal=principal,
        hours=request.app.state.settings.console_session_hours,
    )
    response = RedirectResponse(_local(field(form, "next")), 303)
    response.set_cookie(
        sessions.COOKIE,
        session_id,
        httponly=True,
        samesite="strict",
        path=PREFIX,
        secure=request.url.scheme == "https",  # uvicorn applies X-Forwarded-Proto first
        max_age=int(request.app.state.settings.console_session_hours * 3600),
    )
    return response


@router.post("/sign-out")
async def sign_out(request: Request, session: SessionDep, user: SignedInDep) -> Response:
    # Any sign-in may end itself, but only with its CSRF token (a read token's too).
    session_id = request.cookies[sessions.COOKIE]
    if sessions.csrf_matches(session_id, field(await read_form(request), "csrf")):
        await sessions.end(session=session, session_id=session_id)
    response = RedirectResponse(f"{PREFIX}/sign-in", 303)
    response.delete_cookie(sessions.COOKIE, path=PREFIX)
    return response


def _local(target: str) -> str:
    """Only a path of the console is a place to go after signing in (no open redirect)."""
    return target if target.startswith(f"{PREFIX}") and "//" not in target else PREFIX


@router.get("")
async def overview(request: Request, session: SessionDep, user: SignedInDep) -> HTMLResponse:
    now = datetime.now(UTC)
    seen = await queries.overview(session, now=now)
    return render(
        request,
        "overview.html",
        user,
        seen=seen,
        now=now,
        events=queries.minute_bars(seen.events_per_minute, now=now, hours=seen.hours),
        delivered=queries.minute_bars(seen.delivered_per_minute, now=now, hours=seen.hours),
    )


@router.get("/customer")
async def customer(
    request: Request, session: SessionDep, user: SignedInDep, q: str = ""
) -> HTMLResponse:
    found = await queries.customer(session, q.strip()) if q.strip() else None
    return render(request, "customer.html", user, q=q, found=found)


@router.get("/deliveries")
async def deliveries(
    request: Request,
    session: SessionDep,
    user: SignedInDep,
    status: Annotated[str, Query()] = "",
    distribution_id: str = "",
    trigger: str = "",
    since: str = "",
    until: str = "",
    cursor: str | None = None,
) -> HTMLResponse:
    filters = {
        "status": status,
        "distribution_id": distribution_id,
        "trigger": trigger,
        "since": since,
        "until": until,
    }
    error = None
    try:
        query = repository.deliveries_query(
            {
                "status": status or None,
                "trigger": trigger or None,
                "distribution_id": distribution_pages.uuid_or_none(distribution_id),
                "since": _moment(since),
                "until": _moment(until),
            }
        )
        rows, next_cursor = await page(session, query, Delivery.id, limit=50, cursor=cursor)
    except (ValueError, VoucherRelayError) as exc:
        rows, next_cursor, error = [], None, str(exc)
    return render(
        request,
        "deliveries.html",
        user,
        rows=rows,
        next_cursor=next_cursor,
        filters=filters,
        statuses=STATUSES,
        triggers=TRIGGERS,
        error=error,
        distributions=await distributions.list_all(session, include_deleted=True),
    )


@router.get("/deliveries/{delivery_id:int}")
async def delivery(
    request: Request, delivery_id: int, session: SessionDep, user: SignedInDep
) -> HTMLResponse:
    detail = await audit.get_delivery(delivery_id, session, user.principal)
    answers = {}
    for attempt in detail.attempts_log:
        if attempt.braze_request is not None and attempt.braze_request.id not in answers:
            answers[attempt.braze_request.id] = await audit.get_braze_request(
                attempt.braze_request.id, session, user.principal
            )
    return render(request, "delivery.html", user, d=detail, answers=answers)


@router.post("/deliveries/{delivery_id:int}/replay")
async def replay(
    request: Request, delivery_id: int, session: SessionDep, user: ActingDep
) -> Response:
    form = await read_form(request)
    try:
        await replay_delivery(
            session=session,
            delivery_id=delivery_id,
            force=field(form, "force") == "on",
            principal=user.principal,
        )
    except VoucherRelayError as exc:
        return HTMLResponse(
            f'<span class="error" role="alert">{escape(exc.message)}</span>', exc.status_code
        )
    request.app.state.wake_worker()
    if request.headers.get("HX-Request"):
        return HTMLResponse('<span class="ok" role="status">Queued again.</span>')
    return RedirectResponse(f"{PREFIX}/deliveries/{delivery_id}", 303)


@router.get("/events")
async def events(
    request: Request,
    session: SessionDep,
    user: SignedInDep,
    type: str = "",
    outcome: str = "",
    customer: str = "",
    since: str = "",
    until: str = "",
    cursor: str | None = None,
) -> HTMLResponse:
    filters = {
        "type": type,
        "outcome": outcome,
        "customer": customer,
        "since": since,
        "until": until,
    }
    error = None
    try:
        query = repository.events_query(
            event_type=type or None,
            outcome=outcome or None,
            customer=customer or None,
            since=_moment(since),
            until=_moment(until),
        )
        rows, next_cursor = await page(session, query, WebhookEvent.id, limit=50, cursor=cursor)
    except (ValueError, VoucherRelayError) as exc:
        rows, next_cursor, error = [], None, str(exc)
    return render(
        request,
        "events.html",
        user,
        rows=rows,
        next_cursor=next_cursor,
        filters=filters,
        outcomes=get_args(Outcome),
        error=error,
    )


@router.get("/events/{event_id:int}")
async def event(
    request: Request, event_id: int, session: SessionDep, user: SignedInDep
) -> HTMLResponse:
    detail = await audit.get_event(event_id, session, user.principal)
    return render(request, "event.html", user, e=detail)


def _moment(value: str) -> datetime | None:
    """A time typed in a filter (an HTML datetime-local: UTC, as the page says)."""
    if not value:
        return None
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
