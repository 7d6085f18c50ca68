"""A database outage: 503 with Retry-After while it lasts, nothing lost or doubled after."""

from __future__ import annotations

import asyncio
from collections import Counter
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


async def test_webhooks_in_flight_while_the_database_shuts_down_get_503_never_500(
    own_server: tuple[EmbeddedPostgres, URL], settings: Settings
) -> None:
    # Found by `make soak`: a fast shutdown cut connections in the middle of a batch; the
    # inbox's one-by-one fallback then met "the database system is shutting down" and answered
    # 500 (an asyncpg error no handler knew) instead of the contract's 503.
    server, url = own_server
    engine = create_engine(url, settings)
    app = create_app(settings, engine=engine)

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:

            async def post(number: int) -> int:
                body = sample("customer.order.paid")
                body["event"]["id"] = f"evcus_shutdown_{number}"
                raw, headers = signed(body)
                answer = await client.post("/webhooks/voucherify", content=raw, headers=headers)
                return answer.status_code

            answers: list[int] = []
            busy, stopped = asyncio.Event(), asyncio.Event()

            async def keep_posting(start: int) -> None:
                # Until the server is gone, and a little after: some requests are mid-batch
                # when the shutdown cuts their connection.
                for number in range(start, start + 1000):
                    answers.append(await post(number))
                    if len(answers) >= 100:
                        busy.set()
                    # Duplicates make the inbox look stored events up after storing the rest.
                    answers.append(await post(number))
                    if stopped.is_set() and number - start > 20:
                        return

            async def stop_when_busy() -> None:
                await busy.wait()
                await asyncio.to_thread(server.stop)
                stopped.set()

            await asyncio.gather(stop_when_busy(), *(keep_posting(n * 1000) for n in range(16)))

    answered = Counter(answers)
    assert set(answered) <= {200, 202, 503}, answered
    await engine.dispose()
