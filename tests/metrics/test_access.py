"""Who may read /metrics, what it says when the database is down, and what scrapes cost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from pydantic import SecretStr
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.config import Settings
from app.main import create_app
from app.metrics.collectors import DatabaseState
from app.metrics.exposition import ProcessMetrics, serve_metrics
from tests.e2e.processes import free_port
from tests.factories import sample, signed
from tests.metrics.scrape import delta, parse, value

DEAD_DATABASE = make_url("postgresql+asyncpg://relay:relay@127.0.0.1:1/relay")


@asynccontextmanager
async def api(settings: Settings, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, engine=engine)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


async def test_metrics_are_open_by_default(settings: Settings, engine: AsyncEngine) -> None:
    async with api(settings, engine) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert "voucher_relay_database_up 1.0" in response.text


async def test_a_metrics_token_is_required_when_set(
    settings: Settings, engine: AsyncEngine
) -> None:
    guarded = settings.model_copy(update={"metrics_token": SecretStr("s3cret-scrape")})
    async with api(guarded, engine) as client:
        missing = await client.get("/metrics")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        right = await client.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape"})
    assert missing.status_code == wrong.status_code == 401
    assert missing.json()["error"]["code"] == "unauthorized"
    assert "METRICS_TOKEN" in missing.json()["error"]["message"]
    assert right.status_code == 200 and "voucher_relay_queue_deliveries" in right.text


async def test_metrics_can_be_switched_off(settings: Settings, engine: AsyncEngine) -> None:
    off = settings.model_copy(update={"metrics_enabled": False})
    async with api(off, engine) as client:
        response = await client.get("/metrics")
    assert response.status_code == 404
    assert "METRICS_ENABLED" in response.json()["error"]["message"]


async def test_database_down_webhooks_503_are_counted_and_metrics_still_answer(
    settings: Settings,
) -> None:
    dead = create_async_engine(DEAD_DATABASE)
    try:
        async with api(settings, dead) as client:
            before = parse((await client.get("/metrics")).text)
            raw, headers = signed(sample("customer.order.paid"))
            answer = await client.post("/webhooks/voucherify", content=raw, headers=headers)
            after = parse((await client.get("/metrics")).text)
    finally:
        await dead.dispose()
    assert answer.status_code == 503
    received = "voucher_relay_webhooks_received_total"
    assert delta(before, after, received, event_type="", outcome="rejected", status="503") == 1
    assert value(after, "voucher_relay_database_up") == 0
    assert not any(name == "voucher_relay_queue_deliveries" for name, _ in after)


async def test_a_scrape_storm_reads_the_database_once(engine: AsyncEngine) -> None:
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        state = DatabaseState(engine, workspace="storm-test", max_age=60)
        snapshots = await asyncio.gather(*(state.read() for _ in range(50)))
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
    assert all(s is snapshots[0] and s.up for s in snapshots)
    # One read: the queue, the gate, the table counts.
    reads = [s for s in statements if s.lstrip().upper().startswith(("SELECT", "WITH"))]
    assert len(reads) == 3, statements


def test_the_worker_port_serves_its_counters_behind_the_token() -> None:
    port = free_port()
    server = serve_metrics(
        host="127.0.0.1", port=port, token="worker-scrape-token", collector=ProcessMetrics(None)
    )
    try:
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/metrics").status_code == 401
        ok = httpx.get(f"{base}/metrics", headers={"Authorization": "Bearer worker-scrape-token"})
        assert httpx.get(f"{base}/other").status_code == 404
    finally:
        server.shutdown()
        server.server_close()
    assert ok.status_code == 200
    assert "# TYPE voucher_relay_data_points_saved_total counter" in ok.text
    assert "voucher_relay_database_up" not in ok.text  # Postgres-held numbers: ask the API
