"""Runs end to end: the worker pages the audience from the Voucherify emulator, publishes codes
and the Braze emulator ends up with the attributes."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg
import httpx

from tests.conftest import WRITER
from tests.delivery.conftest import Emulator
from tests.runs.conftest import (
    SEGMENT,
    Relay,
    RelayFactory,
    Voucherify,
    add_distribution,
    finish,
    run_status,
    segment_run,
    start_run,
)
from tests.voucherify.fakes import FakeClock


async def test_a_run_over_a_paged_segment_reaches_braze(
    committing_client: httpx.AsyncClient, make_relay: RelayFactory, voucherify: Voucherify,
    emulator: Emulator,
) -> None:  # fmt: skip
    customers = voucherify.segment(250)
    distribution_id = await add_distribution(committing_client)
    relay = await make_relay(page_size=40)
    stop = asyncio.Event()
    worker = asyncio.create_task(relay.run(stop))  # every lane, as in production
    try:
        run = await start_run(committing_client, distribution_id, {"segment_id": SEGMENT})
        while (run := await run_status(committing_client, run["id"]))["status"] != "done":
            assert run["status"] in ("scheduled", "running"), run
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await worker

    progress = run["progress"]
    assert progress == {
        "audience_size": 250, "processed": 250, "published": 250, "delivered": 250,
        "pending": 0, "skipped": {"total": 0, "reasons": {}},
        "failed": {"total": 0, "reasons": {}},
    }  # fmt: skip
    assert run["requested_by"] == "ops-team" and run["finished_at"] is not None
    profiles = emulator.state.profiles_snapshot()
    codes = {profiles[f"external_id:{c.source_id}"]["welcome_code"] for c in customers}
    assert len(codes) == 250 and all(code.startswith("WELCOME-") for code in codes)
    # Seven pages of 40, every one after the first by the starting_after cursor.
    listings = [r for r in voucherify.listings() if "limit=40" in r["query"]]
    assert len(listings) == 7
    assert all("starting_after" in r["query"] for r in listings[1:])


async def test_a_run_canceled_inside_its_delay_publishes_and_sends_nothing(
    committing_client: httpx.AsyncClient, make_relay: RelayFactory, voucherify: Voucherify,
    emulator: Emulator, pool: asyncpg.Pool,
) -> None:  # fmt: skip
    voucherify.segment(5)
    distribution_id = await add_distribution(committing_client)
    answer = await committing_client.post(
        f"/api/v1/distributions/{distribution_id}/runs",
        json={"audience": {"segment_id": SEGMENT}}, headers=WRITER,
    )  # fmt: skip
    run = answer.json()
    assert run["status"] == "scheduled" and run["delay_seconds"] == 600
    canceled = await committing_client.post(f"/api/v1/runs/{run['id']}/cancel", headers=WRITER)
    assert canceled.json()["status"] == "canceled"

    # Even once its time has come, a canceled run never starts.
    await pool.execute("UPDATE runs SET scheduled_at = now() - interval '1 hour'")
    relay = await make_relay()
    assert await relay.cycle() == 0
    assert (await run_status(committing_client, run["id"]))["status"] == "canceled"
    assert await pool.fetchval("SELECT count(*) FROM deliveries") == 0
    assert voucherify.state.publications_snapshot() == []
    assert emulator.state.requests_snapshot() == []


async def paging_run(
    client: httpx.AsyncClient, make_relay: RelayFactory, voucherify: Voucherify,
    pool: asyncpg.Pool, *, members: int, stored: int,
) -> tuple[str, dict[str, Any], Relay, asyncio.Task[bool]]:  # fmt: skip
    """A run over a segment of `members`, paging (25 a page) slowly enough to act between two
    pages, once `stored` members have their delivery: (distribution, run, relay, paging)."""
    distribution_id, run = await segment_run(client, voucherify, members)
    voucherify.state.faults.latency_ms = 100
    relay = await make_relay(page_size=25)
    paging = asyncio.create_task(relay.executor.cycle())
    while await pool.fetchval("SELECT processed FROM runs") < stored:
        assert not paging.done(), "the run ended before the test could act"
        await asyncio.sleep(0.01)
    return distribution_id, run, relay, paging


async def test_a_run_canceled_while_paging_stops_and_skips_what_still_waits(
    committing_client: httpx.AsyncClient, make_relay: RelayFactory, voucherify: Voucherify,
    emulator: Emulator, pool: asyncpg.Pool,
) -> None:  # fmt: skip
    _, run, relay, paging = await paging_run(
        committing_client, make_relay, voucherify, pool, members=250, stored=50
    )

    canceled = await committing_client.post(f"/api/v1/runs/{run['id']}/cancel", headers=WRITER)
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["status"] == "canceled" and canceled.json()["canceled_by"] == "ops-team"
    await asyncio.wait_for(paging, timeout=10)  # it stops at its next page
    voucherify.state.faults.latency_ms = 0
    stored = await pool.fetchval("SELECT count(*) FROM deliveries")
    assert 50 <= stored < 250
    assert await relay.cycle() >= 0  # the other lanes have nothing left to do
    await relay.worker.flush()

    after = await run_status(committing_client, run["id"])
    assert after["status"] == "canceled"
    assert after["progress"]["skipped"] == {"total": stored, "reasons": {"run_canceled": stored}}
    assert after["progress"]["pending"] == 0 and after["progress"]["delivered"] == 0
    assert voucherify.state.publications_snapshot() == []
    assert emulator.state.requests_snapshot() == []
    log = await pool.fetch("SELECT DISTINCT outcome, message FROM delivery_attempts")
    assert [tuple(r) for r in log] == [("skipped", f"run {run['id']} canceled by ops-team")]
    # A canceled run is never taken up again.
    await pool.execute("UPDATE runs SET scheduled_at = now() - interval '1 hour'")
    assert not await relay.executor.cycle()


async def test_pages_stored_while_the_distribution_is_paused_are_held_until_it_resumes(
    committing_client: httpx.AsyncClient, make_relay: RelayFactory, voucherify: Voucherify,
    emulator: Emulator, pool: asyncpg.Pool,
) -> None:  # fmt: skip
    distribution_id, run, relay, paging = await paging_run(
        committing_client, make_relay, voucherify, pool, members=100, stored=25
    )
    url = f"/api/v1/distributions/{distribution_id}"
    assert (await committing_client.post(f"{url}/pause", headers=WRITER)).status_code == 200
    await asyncio.wait_for(paging, timeout=10)
    voucherify.state.faults.latency_ms = 0

    held = "SELECT count(*) FROM deliveries WHERE next_attempt_at > now() + interval '1000 years'"
    assert await pool.fetchval(held) == 100  # paged before and after the pause alike
    await relay.cycle()
    assert voucherify.state.publications_snapshot() == []
    assert emulator.state.requests_snapshot() == []

    assert (await committing_client.post(f"{url}/resume", headers=WRITER)).status_code == 200
    shown = await finish(relay, committing_client, run["id"])
    assert shown["status"] == "done" and shown["progress"]["delivered"] == 100


async def test_a_run_killed_half_way_resumes_without_a_second_code(
    committing_client: httpx.AsyncClient, make_relay: RelayFactory, voucherify: Voucherify,
    emulator: Emulator, pool: asyncpg.Pool,
) -> None:  # fmt: skip
    customers = voucherify.segment(250)
    voucherify.state.faults.latency_ms = 100  # slow enough to stop it between two pages
    distribution_id = await add_distribution(committing_client)
    run = await start_run(committing_client, distribution_id, {"segment_id": SEGMENT})

    first = await make_relay(lease=1, page_size=25)

    async def publish() -> None:
        while True:
            await first.publisher.cycle(limit=5)

    # Codes go out while the audience is paged; then the worker dies, both lanes mid-request.
    lanes = [asyncio.create_task(first.executor.cycle()), asyncio.create_task(publish())]
    while await pool.fetchval("SELECT processed FROM runs") < 100:
        assert not lanes[0].done(), "the run ended before the worker could be stopped"
        await asyncio.sleep(0.01)
    for lane in lanes:
        lane.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await lane
    voucherify.state.faults.latency_ms = 0
    stopped_at = await pool.fetchval("SELECT processed FROM runs")
    assert 100 <= stopped_at < 250
    assert 0 < len(voucherify.state.publications_snapshot()) < 250
    listed_before = len(voucherify.listings())

    second = await make_relay(page_size=25)  # a fresh worker takes over once the lease expires
    run = await finish(second, committing_client, run["id"])
    assert run["status"] == "done"
    assert run["progress"]["processed"] == 250 and run["progress"]["delivered"] == 250
    resumed = voucherify.listings()[listed_before:]
    assert "starting_after" in resumed[1]["query"]  # [0] counts the segment; then the cursor
    publications = voucherify.state.publications_snapshot()
    assert sorted(p["customer_id"] for p in publications) == sorted(c.id for c in customers)
    assert await pool.fetchval("SELECT count(DISTINCT run_member) FROM deliveries") == 250
    assert len(emulator.state.profiles_snapshot()) == 250


async def test_a_campaign_running_out_of_codes_fails_those_deliveries_and_the_run_finishes(
    committing_client: httpx.AsyncClient, make_relay: RelayFactory, voucherify: Voucherify,
) -> None:  # fmt: skip
    voucherify.state.add_campaign(name="Only five", count=5, pattern="FIVE-#")
    voucherify.segment(8)
    distribution_id = await add_distribution(
        committing_client, code_source={"type": "publish", "campaign": "Only five"}
    )
    run = await start_run(committing_client, distribution_id, {"segment_id": SEGMENT})
    run = await finish(await make_relay(), committing_client, run["id"])
    assert run["status"] == "done"
    assert run["progress"]["published"] == 5 and run["progress"]["delivered"] == 5
    assert run["progress"]["failed"] == {
        "total": 3, "reasons": {"no_voucher_suitable_for_publication": 3}
    }  # fmt: skip


async def test_listed_customers_without_consent_identifier_or_record_are_counted(
    committing_client: httpx.AsyncClient, make_relay: RelayFactory, voucherify: Voucherify,
    emulator: Emulator,
) -> None:  # fmt: skip
    state = voucherify.state
    opted_in = [state.add_customer(source_id=f"in-{n}", metadata={"braze_opt_in": True})
                for n in range(3)]  # fmt: skip
    opted_out = state.add_customer(source_id="out", metadata={"braze_opt_in": False})
    anonymous = state.add_customer(metadata={"braze_opt_in": True})  # no source_id: no external_id
    listed = [c.id for c in (*opted_in, opted_out, anonymous)] + ["cust_unknown"]
    distribution_id = await add_distribution(committing_client)
    run = await start_run(committing_client, distribution_id, {"customer_ids": listed})
    assert run["progress"]["audience_size"] == 6

    run = await finish(await make_relay(), committing_client, run["id"])
    assert run["progress"] == {
        "audience_size": 6, "processed": 6, "published": 3, "delivered": 3, "pending": 0,
        "skipped": {"total": 2, "reasons": {"no_consent": 1, "no_identifier": 1}},
        "failed": {"total": 1, "reasons": {"customer_not_found": 1}},
    }  # fmt: skip
    assert sorted(emulator.state.profiles_snapshot()) == [f"external_id:in-{n}" for n in range(3)]
    assert len(state.publications_snapshot()) == 3  # no code for customers without consent


async def test_a_customer_whose_data_holds_a_nul_character_fails_visibly(
    committing_client: httpx.AsyncClient, make_relay: RelayFactory, voucherify: Voucherify,
    emulator: Emulator,
) -> None:  # fmt: skip
    """Postgres cannot store it in the member's envelope, and a cleaned copy could address
    another Braze user: that member fails with the reason; the others are sent."""
    state = voucherify.state
    fine = state.add_customer(source_id="fine", metadata={"braze_opt_in": True})
    broken = state.add_customer(source_id="bro\x00ken", metadata={"braze_opt_in": True})
    distribution_id = await add_distribution(committing_client)
    run = await start_run(
        committing_client, distribution_id, {"customer_ids": [fine.id, broken.id]}
    )
    run = await finish(await make_relay(), committing_client, run["id"])
    assert (run["status"], run["progress"]["delivered"]) == ("done", 1)
    assert run["progress"]["failed"] == {"total": 1, "reasons": {"invalid_customer": 1}}
    assert sorted(emulator.state.profiles_snapshot()) == ["external_id:fine"]


async def test_source_ids_name_the_audience_too(
    committing_client: httpx.AsyncClient, make_relay: RelayFactory, voucherify: Voucherify,
    emulator: Emulator,
) -> None:  # fmt: skip
    voucherify.segment(3)
    distribution_id = await add_distribution(committing_client)
    run = await start_run(
        committing_client, distribution_id, {"source_ids": ["customer-1", "customer-3"]}
    )
    run = await finish(await make_relay(), committing_client, run["id"])
    assert run["progress"]["delivered"] == 2
    assert sorted(emulator.state.profiles_snapshot()) == [
        "external_id:customer-1", "external_id:customer-3"
    ]  # fmt: skip


async def test_a_429_from_voucherify_is_waited_out_during_a_run(
    committing_client: httpx.AsyncClient, make_relay: RelayFactory, voucherify: Voucherify,
) -> None:  # fmt: skip
    _, run = await segment_run(committing_client, voucherify, 5)
    voucherify.state.faults.fail_next(2, status=429, retry_after=7)
    clock = FakeClock()
    relay = await make_relay(clock=clock, sleep=clock.sleep)
    run = await finish(relay, committing_client, run["id"])

    assert run["status"] == "done" and run["progress"]["delivered"] == 5
    assert [r["status"] for r in voucherify.state.requests_snapshot()[:3]] == [429, 429, 200]
    assert clock.sleeps.count(7) == 2  # Retry-After honoured, before each new try


async def test_a_run_of_an_unknown_segment_fails_with_the_reason(
    committing_client: httpx.AsyncClient, make_relay: RelayFactory, voucherify: Voucherify,
) -> None:  # fmt: skip
    distribution_id = await add_distribution(committing_client)
    run = await start_run(committing_client, distribution_id, {"segment_id": "seg_missing"})
    run = await finish(await make_relay(), committing_client, run["id"])
    assert run["status"] == "failed"
    assert "seg_missing" in run["error"]


async def test_a_paused_distribution_fails_its_waiting_run(
    committing_client: httpx.AsyncClient, make_relay: RelayFactory, voucherify: Voucherify,
) -> None:  # fmt: skip
    distribution_id, run = await segment_run(committing_client, voucherify, 2)
    await committing_client.post(f"/api/v1/distributions/{distribution_id}/pause", headers=WRITER)
    run = await finish(await make_relay(), committing_client, run["id"])
    assert run["status"] == "failed"
    assert run["error"] == "the distribution was paused before the run started"
    assert voucherify.state.publications_snapshot() == []
