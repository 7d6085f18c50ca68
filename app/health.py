"""Liveness and readiness: what a load balancer and an orchestrator poll."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.db.schema import schema_state
from app.delivery.gate import workspace_key
from app.unconfigured import unconfigured

router = APIRouter(tags=["health"])

READINESS_TIMEOUT_SECONDS = 2.0


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Ready: the database answers and Braze is not refusing our configuration",
)
async def readyz(request: Request) -> JSONResponse:
    engine = request.app.state.engine
    settings: Settings = request.app.state.settings
    checks: dict[str, Any] = {"database": await _database_check(engine)}
    if checks["database"]["ok"]:
        checks["schema"] = await _schema_check(engine)
    if checks["database"]["ok"] and checks["schema"]["ok"]:
        checks["braze"] = await _braze_check(engine, settings)
    ready = all(check["ok"] for check in checks.values())
    gaps = unconfigured(settings, api=True, worker=request.app.state.with_worker)
    return JSONResponse(
        {
            "status": "ready" if ready else "not_ready",
            "checks": checks,
            # Information only: a service without, say, Braze keys is ready for what it does.
            "not_configured": [gap.as_json() for gap in gaps],
        },
        status_code=200 if ready else 503,
    )


async def _database_check(engine: AsyncEngine) -> dict[str, Any]:
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_SECONDS):
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means "not ready"; the reason is reported
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}".strip()[:300]}
    return {"ok": True}


async def _schema_check(engine: AsyncEngine) -> dict[str, Any]:
    """Not ready until the database is migrated to this code's revision: before that every
    API call would fail on a missing table or column."""
    try:
        async with asyncio.timeout(READINESS_TIMEOUT_SECONDS):
            state = await schema_state(engine)
    except Exception as exc:  # reported, like the database check's
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}".strip()[:300]}
    check: dict[str, Any] = {"ok": state.ok, "revision": state.revision, "head": state.head}
    if state.problem is not None:
        check["error"] = state.problem
    return check


async def _braze_check(engine: AsyncEngine, settings: Settings) -> dict[str, Any]:
    """Not ready while Braze refuses the key or URL (401/403/404/415): deliveries wait."""
    if settings.braze_api_key is None:
        return {"ok": True, "configured": False,
                "detail": "BRAZE_API_KEY is not set: deliveries wait in the queue"}  # fmt: skip
    workspace = workspace_key(settings.braze_rest_url, settings.braze_api_key.get_secret_value())
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                text("SELECT blocked_reason, blocked_since FROM braze_gate WHERE workspace = :w"),
                {"w": workspace},
            )
        ).first()
    if row is None or row.blocked_reason is None:
        return {"ok": True, "configured": True}
    return {
        "ok": False,
        "configured": True,
        "error": f"Braze refuses the configuration: {row.blocked_reason}",
        "since": row.blocked_since.isoformat(),
    }
