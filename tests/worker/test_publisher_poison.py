"""A delivery the publisher cannot complete is settled with its reason, never left in flight to
be claimed again every lease (and to hold up the rest of its batch) for ever (issue 15)."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest

from app.distributions import mapping
from app.sandbox.voucherify.state import EmulatorState
from app.worker.publisher import Publisher
from tests.worker.test_publisher import (
    entered_without_code,
    post,
    publish_distribution,
    publisher,
    voucherify,
)

__all__ = ["publisher", "voucherify"]  # the fixtures, shared with the publisher's other tests


async def _three_waiting(
    client: httpx.AsyncClient, pool: asyncpg.Pool, state: EmulatorState
) -> list[int]:
    """Three deliveries waiting for a code, oldest first."""
    state.add_campaign(name="Plenty", id="camp_plenty", codes=["P-1", "P-2", "P-3"])
    await publish_distribution(client, "Plenty")
    for n in range(3):
        event = entered_without_code()
        event["event"]["id"] = f"evt_{n}"
        event["data"]["customer"]["source_id"] = f"usr-{n}"
        await post(client, event)
    rows = await pool.fetch("SELECT id FROM deliveries ORDER BY id")
    await pool.execute(
        "UPDATE deliveries SET next_attempt_at = now() - (4 - id) * interval '1 minute'"
    )
    return [r["id"] for r in rows]


async def _outcomes(pool: asyncpg.Pool) -> list[tuple[str, str]]:
    rows = await pool.fetch(
        "SELECT status, coalesce(last_error, '') AS e FROM deliveries ORDER BY id"
    )
    return [(r["status"], r["e"]) for r in rows]


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]"])
async def test_a_delivery_whose_event_cannot_be_read_fails_and_the_rest_of_its_batch_goes_on(
    committing_client: httpx.AsyncClient, pool: asyncpg.Pool, publisher: Publisher, body: bytes,
    voucherify: tuple[str, EmulatorState],
) -> None:  # fmt: skip
    first, *_ = await _three_waiting(committing_client, pool, voucherify[1])
    # What a hand edit, or a format an older version wrote, can leave: the event unreadable.
    await pool.execute(
        "UPDATE webhook_events SET raw_body = $2 WHERE id = (SELECT event_id FROM"
        " deliveries WHERE id = $1)", first, body,
    )  # fmt: skip

    assert await publisher.cycle() == 3

    (status, error), *rest = await _outcomes(pool)
    assert status == "failed" and error.startswith("invalid_event:"), error
    assert [s for s, _ in rest] == ["pending", "pending"]  # resolved: on their way to Braze
    assert await publisher.cycle() == 0  # nothing is claimed again


async def test_a_delivery_whose_distribution_no_longer_validates_fails_with_the_reason(
    committing_client: httpx.AsyncClient, pool: asyncpg.Pool, publisher: Publisher,
    voucherify: tuple[str, EmulatorState],
) -> None:  # fmt: skip
    await _three_waiting(committing_client, pool, voucherify[1])
    # A hand edit (or a rule tightened by an upgrade): no code mapped any more.
    await pool.execute("UPDATE distributions SET mapping = '[]'")

    assert await publisher.cycle() == 3

    outcomes = await _outcomes(pool)
    assert [s for s, _ in outcomes] == ["failed"] * 3
    assert all(e.startswith("invalid_distribution: mapping: ") for _, e in outcomes), outcomes
    assert await publisher.cycle() == 0


async def test_a_result_postgres_cannot_store_fails_the_delivery_instead_of_leaving_it_in_flight(
    committing_client: httpx.AsyncClient, pool: asyncpg.Pool, publisher: Publisher,
    voucherify: tuple[str, EmulatorState], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Whatever no check foresaw: here a user key Postgres text cannot hold."""
    first, *_ = await _three_waiting(committing_client, pool, voucherify[1])
    resolve = mapping.resolve

    def poisoned(**kwargs: Any) -> mapping.Resolution:
        result = resolve(**kwargs)
        if isinstance(result, mapping.Send) and result.braze_user_key.endswith("usr-0"):
            return mapping.Send("external_id:usr\x00", result.attributes, result.event_time)
        return result

    monkeypatch.setattr(mapping, "resolve", poisoned)  # what the publisher calls

    assert await publisher.cycle() == 3

    (status, error), *rest = await _outcomes(pool)
    assert status == "failed" and error.startswith("unstorable_result:"), error
    assert [s for s, _ in rest] == ["pending", "pending"]
    attempts = await pool.fetch(
        "SELECT outcome FROM delivery_attempts WHERE delivery_id = $1", first
    )
    assert [r["outcome"] for r in attempts] == ["failed"]
