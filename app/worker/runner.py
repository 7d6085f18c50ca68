"""Wiring a worker process to its resources: its own asyncpg pool, the Braze and Voucherify
clients, the gate; and choosing its lanes by what is configured."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from datetime import timedelta

import asyncpg
import orjson
from sqlalchemy.engine import URL

from app.braze.client import BrazeClient
from app.config import Settings
from app.db.raw import keep_session
from app.delivery.gate import BrazeGate, workspace_key
from app.delivery.store.queue import DeliveryQueue
from app.delivery.work import WorkerConfig
from app.delivery.worker import Worker
from app.metrics.registry import process_running
from app.ops.bulk_replay import ReplayLane
from app.retry import parse_schedule
from app.runs.executor import RunExecutor
from app.voucherify.client import VoucherifyClient
from app.worker.lanes import QueueLanes
from app.worker.publisher import Publisher

logger = logging.getLogger(__name__)

POOL_CLOSE_SECONDS = 5.0


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


async def create_pool(
    url: URL, *, size: int, connect_timeout: float, statement_timeout: float = 10.0
) -> asyncpg.Pool:
    async def init(connection: asyncpg.Connection) -> None:
        # jsonb travels as JSON text we encode ourselves, and comes back decoded.
        await connection.set_type_codec(
            "jsonb", encoder=str, decoder=orjson.loads, schema="pg_catalog"
        )

    pool = await asyncpg.create_pool(
        host=url.query.get("host") or url.host, port=url.port, user=url.username,
        password=url.password, database=url.database, min_size=0, max_size=size,
        timeout=connect_timeout, init=init, reset=keep_session,
        # Every worker query is an ordered or keyed index lookup. The queue tables change faster
        # than autovacuum analyzes them (a burst fills them in seconds); with stale statistics
        # the planner read the whole queue (sequential or bitmap scans, then a sort) on every
        # claim, ~10x slower and growing with the backlog.
        server_settings={
            "enable_seqscan": "off", "enable_bitmapscan": "off",
            # app/delivery/budget.py: a statement past its budget fails loudly.
            "statement_timeout": str(round(statement_timeout * 1000)),
            # A backend whose worker was killed stops its statement within a second or two,
            # instead of running on (and holding its locks) until the statement ends.
            "client_connection_check_interval": "2000",
        },
    )  # fmt: skip
    assert pool is not None
    return pool


def gate_for(settings: Settings, pool: asyncpg.Pool) -> BrazeGate | None:
    """The gate of the configured workspace, or None without a Braze key."""
    if settings.braze_api_key is None:
        return None
    return BrazeGate(
        pool,
        workspace=workspace_key(settings.braze_rest_url, settings.braze_api_key.get_secret_value()),
        requests=settings.braze_rate_limit_requests,
        window_seconds=settings.braze_rate_limit_window_seconds,
        probe_interval=settings.braze_probe_seconds,
    )


async def run_worker(
    settings: Settings, url: URL, stop: asyncio.Event, *, wake: asyncio.Event | None = None
) -> None:
    """Work until `stop` is set: every lane whose peer is configured. Without BRAZE_API_KEY
    nothing is sent and deliveries wait in the queue, but codes are published, runs paged,
    replays run and old rows pruned."""
    running = process_running("worker")  # voucher_relay_processes{role="worker"}
    running.inc()
    try:
        await _work_until(settings, url, stop, wake=wake or asyncio.Event())
    finally:
        running.dec()


async def _work_until(
    settings: Settings, url: URL, stop: asyncio.Event, *, wake: asyncio.Event
) -> None:
    pool = await create_pool(
        url,
        # Per Braze lane (with a key) a claim and a record at once, plus the publisher, run
        # and retention lanes.
        size=(2 * settings.braze_concurrency if settings.braze_api_key is not None else 0) + 3,
        connect_timeout=settings.db_connect_timeout_seconds,
        statement_timeout=settings.worker_statement_timeout_seconds,
    )
    identity = worker_id()
    lease = timedelta(seconds=settings.delivery_lease_seconds)
    schedule = parse_schedule(settings.retry_schedule)
    voucherify = _voucherify(settings)
    replays = ReplayLane(settings, url, worker_id=identity)
    queue_lanes = QueueLanes(
        pool=pool, wake=wake, poll_seconds=settings.worker_poll_seconds,
        publisher=(
            Publisher(pool, voucherify=voucherify, worker_id=identity, lease=lease,
                      schedule=schedule)
            if voucherify is not None
            else None
        ),
        runs=(
            RunExecutor(pool, voucherify=voucherify, worker_id=identity, lease=lease,
                        max_failures=settings.run_max_failures)
            if voucherify is not None
            else None
        ),
        replays=replays.runner,
        retention=timedelta(days=settings.retention_days),
    )  # fmt: skip
    worker = _worker(settings, pool, worker_id=identity, lease=lease, schedule=schedule, wake=wake)
    try:
        await asyncio.gather(
            queue_lanes.run(stop), *([worker.run(stop)] if worker is not None else [])
        )
    finally:
        await replays.aclose()
        if worker is not None:
            await worker.braze.aclose()
        if voucherify is not None:
            await voucherify.aclose()
        await close_pool(pool)


async def close_pool(pool: asyncpg.Pool, *, within: float = POOL_CLOSE_SECONDS) -> None:
    """Close gracefully, or cut the connections when one does not come back in time (a
    statement whose cancellation the server has not answered): a stop stays bounded."""
    try:
        await asyncio.wait_for(pool.close(), within)
    except TimeoutError:
        logger.warning("database connections still busy after %g s: closing them", within)
        pool.terminate()


def _worker(
    settings: Settings,
    pool: asyncpg.Pool,
    *,
    worker_id: str,
    lease: timedelta,
    schedule: tuple[timedelta, ...],
    wake: asyncio.Event,
) -> Worker | None:
    """The Braze lanes, or None without BRAZE_API_KEY."""
    gate = gate_for(settings, pool)
    if settings.braze_api_key is None or gate is None:
        return None
    return Worker(
        queue=DeliveryQueue(pool, worker_id=worker_id, lease=lease),
        braze=BrazeClient(
            base_url=settings.braze_rest_url,
            api_key=settings.braze_api_key,
            timeout=settings.braze_timeout_seconds,
            max_connections=settings.braze_concurrency,
        ),
        gate=gate,
        config=WorkerConfig(
            batch_size=settings.braze_batch_size,
            concurrency=settings.braze_concurrency,
            poll_seconds=settings.worker_poll_seconds,
            lease=lease,
            schedule=schedule,
            trust=timedelta(days=settings.attribute_trust_days),
        ),
        wake=wake,
    )


def _voucherify(settings: Settings) -> VoucherifyClient | None:
    # Unset keys are reported at start-up with the rest (app.unconfigured).
    if not settings.voucherify_app_id or settings.voucherify_app_token is None:
        return None
    return VoucherifyClient(
        base_url=settings.voucherify_api_url,
        app_id=settings.voucherify_app_id,
        app_token=settings.voucherify_app_token,
        requests_per_minute=settings.voucherify_requests_per_minute,
    )
