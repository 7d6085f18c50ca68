"""A database outage: 503 with Retry-After while it lasts, nothing lost or doubled after."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import URL

from app.config import Settings
from app.db import migrate
from app.db.embedded import EmbeddedPostgres
from app.db.session import create_engine
from app.main import create_app
from app.webhooks.models import WebhookEvent
from tests.factories import sample, signed


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[tuple[EmbeddedPostgres, URL]]:
    """A Postgres of this test's own, so that it can be stopped without harming the others."""
    server = EmbeddedPostgres(tmp_path)
    url = server.start()
    migrate.upgrade(url)
    try:
        yield server, url
    finally:
        server.stop()


async def test_database_outage_answers_503_then_recovers_without_loss(
    own_server: tuple[EmbeddedPostgres, URL], settings: Settings
) -> None:
    server, url = own_server
    engine = create_engine(url, settings)
    app = create_app(settings, engine=engine)
    first, second = sample("customer.order.paid"), sample("customer.segment.entered")

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:

            async def post(body: dict[str, object]) -> httpx.Response:
                raw, headers = signed(body)
                return await client.post("/webhooks/voucherify", content=raw, headers=headers)

            assert (await post(first)).status_code == 202

            server.stop()
            during = await post(second)
            assert during.status_code == 503
            assert int(during.headers["retry-after"]) > 0
            assert during.json()["error"]["code"] == "database_unavailable"
            assert (await client.get("/readyz")).status_code == 503

            server.start()
            assert (await post(second)).status_code == 202  # Voucherify's retry
            assert (await post(first)).status_code == 200  # a duplicate of the stored one
            assert (await client.get("/readyz")).status_code == 200

    async with engine.connect() as connection:
        stored = await connection.execute(
            select(WebhookEvent.event_type, func.count()).group_by(WebhookEvent.event_type)
        )
        assert dict(stored.all()) == {"customer.order.paid": 1, "customer.segment.entered": 1}
    await engine.dispose()
