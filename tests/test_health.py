from __future__ import annotations

import httpx
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.config import Settings, parse_database_url
from app.db.session import SessionDep
from app.main import create_app

# A Unix socket directory where no server listens: connecting fails at once.
UNREACHABLE = "postgresql://postgres@/voucher_relay?host=/nonexistent-voucher-relay-socket"


async def test_healthz_answers_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_checks_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": {"ok": True}}}


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
