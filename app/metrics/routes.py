"""GET /metrics: per-process counters (summed over processes in multiprocess mode) and the
state Postgres holds, in the Prometheus text format."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.api.auth import UnauthorizedError
from app.config import Settings
from app.errors import NotFoundError
from app.metrics.collectors import DatabaseCollector, DatabaseState
from app.metrics.exposition import ProcessMetrics, bearer_ok, render

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    summary="Prometheus metrics (METRICS_TOKEN, when set, as a bearer token)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}, 401: {}, 404: {}},
)
async def metrics(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    if not settings.metrics_enabled:
        raise NotFoundError("metrics are disabled (METRICS_ENABLED=false)")
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    if not bearer_ok(token, request.headers.get("authorization")):
        raise UnauthorizedError("missing or wrong bearer token (METRICS_TOKEN)")
    database: DatabaseState = request.app.state.metrics_database
    body = render(
        ProcessMetrics(settings.prometheus_multiproc_dir),
        DatabaseCollector(await database.read()),
    )
    return Response(body, media_type=CONTENT_TYPE_LATEST)
