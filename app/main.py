"""The app factory: routers, error handlers, and the lifespan that owns the engine."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from app import __version__, health
from app.api.auth import UnauthorizedError, bearer_token, parse_tokens, principal_from
from app.api.request_body import Admission, RequestBodyDoor, header
from app.config import Settings, get_settings, parse_database_url
from app.console import routes as console
from app.db.schema import MIGRATE_COMMAND as MIGRATE
from app.db.session import create_engine, create_sessionmaker
from app.delivery.gate import workspace_key
from app.distributions import routes as distributions_routes
from app.errors import (
    DATABASE_RETRY_AFTER_SECONDS,
    ConfigError,
    DatabaseUnavailableError,
    VoucherRelayError,
    error_body,
)
from app.metrics import routes as metrics_routes
from app.metrics.collectors import DatabaseState
from app.metrics.registry import count_rejected_webhook, process_running
from app.openapi.document import install_document
from app.openapi.pages import install_pages
from app.ops import replay_routes
from app.ops import routes as ops_routes
from app.ops.body_limit import API_PREFIX, ApiBodyLimit, is_json
from app.runs import routes as runs_routes
from app.webhooks import intake
from app.webhooks import routes as webhooks_routes
from app.webhooks.inbox import Inbox
from app.webhooks.routes import WebhookFastPath

# character_not_in_repertoire (text) and untranslatable_character (jsonb \u0000).
TEXT_POSTGRES_CANNOT_HOLD = frozenset({"22021", "22P05"})
# undefined_table, undefined_column: a database not migrated to this code's revision.
SCHEMA_BEHIND = frozenset({"42P01", "42703"})

logger = logging.getLogger(__name__)

SEND_JSON = "send a JSON body with Content-Type: application/json"
API_DESCRIPTION = (
    "Voucherify calls `POST /webhooks/voucherify` (signed, no token). Everything under "
    "`/api/v1` is the ops API: `Authorization: Bearer <token>` with a token of OPS_API_TOKENS "
    "(`read` scope for reading, `write` for anything that changes something). Errors are "
    '`{"error": {"code", "message", "details"}}`. Lists of events, deliveries, runs and '
    "replays are paged newest first: pass `next_cursor` as `?cursor=`. Times without a zone "
    "are UTC."
)


def _not_utf8(exc: UnicodeDecodeError) -> str:
    """Where a body stops being UTF-8 (a Latin-1 "Müller", say): the first bad byte."""
    body = exc.object
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as first:
        return f"it is not UTF-8: byte 0x{body[first.start]:02x} at position {first.start}"
    return "it is not UTF-8"


def _no_worker_to_wake() -> None:
    """`serve --no-worker` and tests: workers apart find new deliveries when they poll."""


def create_app(
    settings: Settings | None = None,
    *,
    database_url: URL | None = None,
    engine: AsyncEngine | None = None,
    with_worker: bool = False,
    wake_worker: Callable[[], None] | None = None,
) -> FastAPI:
    """Build the application. The engine comes from `engine`, `database_url` or the settings;
    `with_worker` says that a delivery worker runs beside it (`voucher-relay serve`), and
    `wake_worker` tells that worker when deliveries are ready to send."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned_engine = engine is None
        app.state.engine = engine or create_engine(_database_url(settings, database_url), settings)
        app.state.sessionmaker = create_sessionmaker(app.state.engine)
        app.state.wake_worker = wake_worker or _no_worker_to_wake
        app.state.inbox = Inbox(
            app.state.engine.url,
            pool_size=settings.db_pool_size,
            connect_timeout=settings.db_connect_timeout_seconds,
            max_event_time_ahead=timedelta(seconds=settings.event_time_max_ahead_seconds),
            on_deliveries=app.state.wake_worker,
        )
        app.state.metrics_database = DatabaseState(
            app.state.engine,
            workspace=_braze_workspace(settings),
            max_age=settings.metrics_cache_seconds,
        )
        process_running("api").inc()
        try:
            yield
        finally:
            process_running("api").dec()
            await app.state.metrics_database.close()
            await app.state.inbox.close()
            if owned_engine:
                await app.state.engine.dispose()

    app = VoucherRelayApp(
        title="voucher-relay",
        version=__version__,
        summary="Voucherify webhooks to Braze custom attributes, with an audit log and replay.",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served from installed assets by install_pages, not a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.with_worker = with_worker
    app.state.webhook_secrets = [
        secret.get_secret_value().encode() for secret in settings.voucherify_webhook_secret
    ]
    try:
        app.state.ops_tokens = parse_tokens([t.get_secret_value() for t in settings.ops_api_tokens])
    except ValueError as exc:
        raise ConfigError(f"OPS_API_TOKENS: {exc}") from None
    for router in ROUTERS:
        app.include_router(router)
    install_pages(app)
    install_document(app)
    _install_error_handlers(app)
    console.install(app)
    return app


# The webhook route first: routes are matched in order, and it is the hot path.
ROUTERS = (
    webhooks_routes.router, health.router, distributions_routes.router, ops_routes.router,
    replay_routes.router, runs_routes.router, metrics_routes.router,
)  # fmt: skip


class VoucherRelayApp(FastAPI):
    """FastAPI with the request body door outermost (app/api/request_body.py), then the webhook
    fast path, ahead of every middleware layer, then the /api/v1 body checks."""

    def build_middleware_stack(self) -> ASGIApp:
        limited = ApiBodyLimit(
            super().build_middleware_stack(),
            limit=lambda: int(self.state.settings.api_max_body_bytes),
        )
        return RequestBodyDoor(
            WebhookFastPath(limited, state=self.state),
            admit=self._admit,
            budget_limit=lambda: int(self.state.settings.unauthenticated_body_budget_bytes),
            timeout=lambda: float(self.state.settings.request_body_timeout_seconds),
        )

    def _admit(self, scope: Scope) -> Admission | None:
        """The webhook's body is unauthenticated until its signature is checked, and so is a
        console form's; an ops API body is authenticated by the bearer token in its headers, or
        refused unread."""
        settings: Settings = self.state.settings
        if scope["path"] == intake.PATH and scope["method"] == "POST":
            return Admission(
                limit=settings.webhook_max_body_bytes, limit_setting="WEBHOOK_MAX_BODY_BYTES",
                authenticated=False, on_refused=_count_refused_webhook,
            )  # fmt: skip
        if scope["path"].startswith(console.PREFIX + "/"):
            # The console's forms: signed in by a cookie checked in the database past this door
            # (or, signing in, by a token in the body), so unauthenticated here.
            return Admission(
                limit=settings.api_max_body_bytes, limit_setting="API_MAX_BODY_BYTES",
                authenticated=False,
            )  # fmt: skip
        if not scope["path"].startswith(API_PREFIX):
            return None  # no other route reads a body
        try:
            principal_from(self.state.ops_tokens, bearer_token(header(scope, b"authorization")))
        except UnauthorizedError as exc:
            refusal: str | None = exc.message
        else:
            refusal = None
        return Admission(
            limit=settings.api_max_body_bytes, limit_setting="API_MAX_BODY_BYTES",
            authenticated=refusal is None, refusal=refusal,
        )  # fmt: skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Webhooks go straight to the fast path: FastAPI's own __call__ first asks its native
        # telemetry whether OpenTelemetry is configured (environment reads, isinstance checks
        # on every request), 5% of the intake's CPU in a py-spy profile under load.
        if scope["type"] == "http" and scope["path"] == intake.PATH and self.middleware_stack:
            scope["app"] = self
            await self.middleware_stack(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _count_refused_webhook(status: int) -> None:
    # A 503 for want of room has its own metric: this one's 503 is the database-down alert's.
    if status != 503:
        count_rejected_webhook(status)


def _database_url(settings: Settings, database_url: URL | None) -> URL:
    if database_url is not None:
        return database_url
    if settings.database_url is None:
        raise ConfigError("DATABASE_URL is unset; start through `voucher-relay serve`")
    return parse_database_url(settings.database_url.get_secret_value())


def _braze_workspace(settings: Settings) -> str | None:
    """The Braze gate whose state /metrics reports (None without a Braze key)."""
    if settings.braze_api_key is None:
        return None
    return workspace_key(settings.braze_rest_url, settings.braze_api_key.get_secret_value())


def _allowed_methods(request: Request) -> str:
    """Every method some route takes at the request's path. Starlette's 405 names the methods
    of the first such route only, and FastAPI makes a route of each operation."""
    methods: set[str] = set()
    # The app's own routes (/openapi.json, /docs), then those of the included routers.
    routes = [*request.app.router.routes, *(route for router in ROUTERS for route in router.routes)]
    for route in routes:
        if isinstance(route, Route) and route.matches(request.scope)[0] is not Match.NONE:
            methods |= route.methods or set()
    return ", ".join(sorted(methods))


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(VoucherRelayError)
    async def _domain_error(request: Request, exc: VoucherRelayError) -> JSONResponse:
        if isinstance(exc, DatabaseUnavailableError):
            return await _database_down(request, exc)
        return JSONResponse(error_body(exc.code, exc.message, exc.details), exc.status_code)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI's own answers (an unparsable body, an unknown path) in the one error shape.
        if isinstance(exc.__cause__, UnicodeDecodeError):
            # FastAPI's "There was an error parsing the body" does not say what to send.
            message = f"the body is not valid JSON ({_not_utf8(exc.__cause__)}); {SEND_JSON}"
            return JSONResponse(error_body("invalid_json", message), 400)
        if isinstance(exc.__cause__, RecursionError):
            message = f"the body is not valid JSON here (nested too deeply); {SEND_JSON}"
            return JSONResponse(error_body("invalid_json", message), 400)
        code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_").replace("-", "_")
        headers = exc.headers
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": _allowed_methods(request)}
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        if (refused := _not_json(request, exc)) is not None:
            return refused
        details = [
            {"loc": list(err.get("loc", ())), "message": err.get("msg"), "type": err.get("type")}
            for err in exc.errors()
        ]
        return JSONResponse(error_body("validation_error", "the request is invalid", details), 422)

    def _not_json(request: Request, exc: RequestValidationError) -> JSONResponse | None:
        """400 for a body that is not JSON, 415 for one not sent as JSON: both say what to send
        (pydantic's "valid dictionary or object" does not)."""
        errors = exc.errors()
        for err in errors:
            if err.get("type") == "json_invalid":
                reason = (err.get("ctx") or {}).get("error", "JSON decode error")
                message = f"the body is not valid JSON ({reason}); {SEND_JSON}"
                return JSONResponse(error_body("invalid_json", message), 400)
        body_refused = any(tuple(err.get("loc", ()))[:1] == ("body",) for err in errors)
        if body_refused and not is_json(request.headers.get("content-type")):
            given = request.headers.get("content-type") or "no Content-Type"
            message = f"the body was sent as {given}; {SEND_JSON}"
            return JSONResponse(error_body("unsupported_media_type", message), 415)
        return None

    async def _database_down(_: Request, exc: Exception) -> JSONResponse:
        logger.warning("database unavailable: %s", type(exc).__name__)
        return JSONResponse(
            error_body("database_unavailable", "the database is unavailable; retry later"),
            503,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )

    # OSError: a refused connection or a missing socket surfaces from asyncpg unwrapped.
    for error in (OperationalError, InterfaceError, OSError, TimeoutError):
        app.add_exception_handler(error, _database_down)

    @app.exception_handler(DBAPIError)
    async def _dbapi_error(request: Request, exc: DBAPIError) -> JSONResponse:
        if exc.connection_invalidated:
            return await _database_down(request, exc)
        if getattr(exc.orig, "sqlstate", None) in SCHEMA_BEHIND:
            logger.warning("database schema behind the code: %s", type(exc.orig).__name__)
            message = f"the database schema is not migrated for this version: run `{MIGRATE}`"
            return JSONResponse(error_body("schema_not_migrated", message), 503)
        if getattr(exc.orig, "sqlstate", None) in TEXT_POSTGRES_CANNOT_HOLD:
            # A value given to the API (a filter, an audience, a name) holds the NUL character.
            message = "a text value contains the NUL character (\\u0000), which cannot be stored"
            return JSONResponse(error_body("invalid_text", message), 422)
        logger.exception("database error")
        return JSONResponse(error_body("internal_error", "an internal error occurred"), 500)
