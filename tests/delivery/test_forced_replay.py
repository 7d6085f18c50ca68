"""A forced replay corrects what attribute_state records for a user: it wins over `stale`.

Seen: an event time in year 9999 was recorded as an attribute's newest time, so every real
later event of that user was skipped as stale and not even a forced replay could fix it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from tests.conftest import WRITER
from tests.delivery.conftest import Emulator, WorkerFactory, drain, enqueue

NOW = datetime.now(UTC).replace(microsecond=0)
YEAR_9999 = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


def _code(emulator: Emulator) -> object:
    return emulator.state.profiles_snapshot()["external_id:mia"]["code"]


async def _poisoned(pool: asyncpg.Pool, emulator: Emulator, worker: Any) -> int:
    """mia's code recorded with a year-9999 time (as stored before intake bounded event times),
    then a real later event skipped as stale; the stale delivery's id."""
    await enqueue(pool, [("mia", {"code": "FROM-9999"})], event_time=YEAR_9999)
    await drain(worker)
    (real,) = await enqueue(pool, [("mia", {"code": "REAL"})], event_time=NOW)
    await drain(worker)
    assert await pool.fetchval("SELECT skip_reason FROM deliveries WHERE id = $1", real) == "stale"
    assert _code(emulator) == "FROM-9999"
    return int(real)


async def _state_time(pool: asyncpg.Pool) -> datetime:
    when: datetime = await pool.fetchval(
        "SELECT event_time FROM attribute_state WHERE braze_user_key = 'external_id:mia'"
    )
    return when


async def test_a_forced_delivery_replay_wins_over_stale_says_so_and_corrects_the_state(
    committing_client: httpx.AsyncClient, pool: asyncpg.Pool, emulator: Emulator,
    make_worker: WorkerFactory,
) -> None:  # fmt: skip
    worker = await make_worker()
    real = await _poisoned(pool, emulator, worker)

    answer = await committing_client.post(
        f"/api/v1/deliveries/{real}/replay", json={"force": True}, headers=WRITER
    )
    assert answer.status_code == 202, answer.text
    assert answer.json()["state_reset"] == 1
    detail = await committing_client.get(f"/api/v1/deliveries/{real}", headers=WRITER)
    note = detail.json()["attempts_log"][-1]
    assert note["outcome"] == "replay_queued" and "9999-12-31" in note["message"]
    assert "code" in note["message"]

    await drain(worker)
    assert _code(emulator) == "REAL"
    assert await _state_time(pool) == NOW
    # The state is right again: the next real event is sent, not skipped as stale.
    await enqueue(pool, [("mia", {"code": "LATER"})], event_time=NOW + timedelta(minutes=1))
    await drain(worker)
    assert _code(emulator) == "LATER"


async def test_a_forced_event_replay_wins_over_stale_and_says_so(
    committing_client: httpx.AsyncClient, pool: asyncpg.Pool, emulator: Emulator,
    make_worker: WorkerFactory,
) -> None:  # fmt: skip
    worker = await make_worker()
    real = await _poisoned(pool, emulator, worker)
    event_id = await _as_a_stored_event(pool, real)

    answer = await committing_client.post(
        f"/api/v1/events/{event_id}/replay", json={"force": True}, headers=WRITER
    )
    assert answer.status_code == 202, answer.text
    assert (answer.json()["queued"], answer.json()["state_reset"]) == (1, 1)

    await drain(worker)
    assert _code(emulator) == "REAL"
    assert await _state_time(pool) == NOW


async def test_a_replay_without_force_still_refuses_an_older_value(
    committing_client: httpx.AsyncClient, pool: asyncpg.Pool, emulator: Emulator,
    make_worker: WorkerFactory,
) -> None:  # fmt: skip
    worker = await make_worker()
    real = await _poisoned(pool, emulator, worker)
    answer = await committing_client.post(f"/api/v1/deliveries/{real}/replay", headers=WRITER)
    assert answer.status_code == 202 and answer.json()["state_reset"] == 0
    await drain(worker)
    assert _code(emulator) == "FROM-9999"
    assert await pool.fetchval("SELECT skip_reason FROM deliveries WHERE id = $1", real) == "stale"


async def _as_a_stored_event(pool: asyncpg.Pool, delivery_id: int) -> int:
    """Give the delivery the webhook it would have come from, and its distribution a mapping of
    it; the test's other distribution (the 9999 one's) is paused, so the replay leaves it out."""
    at = NOW.isoformat()
    body = {
        "id": "whs_1", "created_at": at, "source": {"id": "wh_1", "object": "webhook"},
        "event": {"id": "evcus_1", "type": "customer.segment.entered", "created_at": at},
        "data": {"customer": {"id": "cust_1", "source_id": "mia"}, "voucher": {"code": "REAL"}},
    }  # fmt: skip
    event_id: int = await pool.fetchval(
        "INSERT INTO webhook_events (voucherify_event_id, source_id, source_object, event_type,"
        " event_created_at, raw_body, signature_result, outcome)"
        " VALUES ('evcus_1', 'wh_1', 'webhook', 'customer.segment.entered', $1, $2,"
        " 'valid_raw', 'matched') RETURNING id",
        NOW, json.dumps(body).encode(),
    )  # fmt: skip
    await pool.execute(
        """
        UPDATE distributions SET identity = '{"type": "external_id"}',
            code_source = '{"type": "event"}',
            mapping = '[{"source": "voucher.code", "attribute": "code"}]',
            status = CASE WHEN id = (SELECT distribution_id FROM deliveries WHERE id = $1)
                          THEN 'active' ELSE 'paused' END
        """,
        delivery_id,
    )
    await pool.execute("UPDATE deliveries SET event_id = $2 WHERE id = $1", delivery_id, event_id)
    return event_id
