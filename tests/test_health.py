from __future__ import annotations

import httpx
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.config import Settings, parse_database_url
from app.db.session import SessionDep
from app.delivery.gate import workspace_key
from app.main import create_app
from tests.conftest import truncate_all

# A Unix socket directory where no server listens: connecting fails at once.
UNREACHABLE = "postgresql://postgres@/voucher_relay?host=/nonexistent-voucher-relay-socket"


async def test_healthz_answers_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_checks_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["braze"]["ok"] is True


async def test_readyz_reports_braze_refusing_the_key(
    settings: Settings, engine: AsyncEngine
) -> None:
    settings = settings.model_copy(update={"braze_api_key": SecretStr("k")})
    workspace = workspace_key(settings.braze_rest_url, "k")
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO braze_gate (workspace, tokens, blocked_reason, blocked_since)"
                " VALUES (:w, 1, 'HTTP 401: Invalid API key', now())"
            ),
            {"w": workspace},
        )
    try:
        app = create_app(settings, engine=engine)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                response = await client.get("/readyz")
        assert response.status_code == 503
        braze = response.json()["checks"]["braze"]
        assert braze["ok"] is False and "HTTP 401" in braze["error"]
    finally:
        await truncate_all(engine)


async def test_openapi_docs_are_served(client: httpx.AsyncClient) -> None:
    assert (await client.get("/docs")).status_code == 200
    assert (await client.get("/openapi.json")).json()["info"]["title"] == "voucher-relay"


def _app_without_database(settings: Settings) -> FastAPI:
    engine = create_async_engine(parse_database_url(UNREACHABLE), pool_pre_ping=True)
    app = create_app(settings, engine=engine)

    @app.get("/needs-database")
    async def needs_database(session: SessionDep) -> dict[str, int]:
        return {"one": (await session.execute(text("SELECT 1"))).scalar_one()}

    return app


async def test_readyz_reports_an_unreachable_database(settings: Settings) -> None:
    app = _app_without_database(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["checks"]["database"]["ok"] is False
    assert body["checks"]["database"]["error"]


async def test_database_outage_answers_503_with_retry_after(settings: Settings) -> None:
    app = _app_without_database(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/needs-database")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "30"
    assert response.json()["error"]["code"] == "database_unavailable"
