"""A run member whose data is odd fails or skips with its reason; the run goes on to `done`
and never retries a page (or a delivery) for ever (issue 15)."""

from __future__ import annotations

import random
import string
from typing import Any

import httpx
import pytest

from app.runs.envelope import run_envelope
from tests.delivery.conftest import Emulator
from tests.runs.conftest import (
    SEGMENT,
    RelayFactory,
    Voucherify,
    add_distribution,
    finish,
    start_run,
)


async def test_long_customer_ids_and_source_ids_are_delivered_or_skipped_with_the_reason(
    committing_client: httpx.AsyncClient, make_relay: RelayFactory, voucherify: Voucherify,
    emulator: Emulator,
) -> None:  # fmt: skip
    state = voucherify.state
    opted_in = {"braze_opt_in": True}
    state.add_customer(source_id="fine", metadata=opted_in, segments=[SEGMENT])
    state.add_customer(source_id="s" * 400, metadata=opted_in, segments=[SEGMENT])
    state.add_customer(id="cust_" + "i" * 300, source_id="long-id", metadata=opted_in,
                       segments=[SEGMENT])  # fmt: skip
    # Over what the run's unique member index takes (even compressed): kept as its start and
    # a digest.
    noise = "".join(random.Random(15).choices(string.ascii_letters + string.digits, k=6000))
    state.add_customer(id=f"cust_{noise}", source_id="longer-id", metadata=opted_in,
                       segments=[SEGMENT])  # fmt: skip
    state.add_customer(source_id="x" * 5000, metadata=opted_in, segments=[SEGMENT])
    distribution_id = await add_distribution(committing_client)
    run = await start_run(committing_client, distribution_id, {"segment_id": SEGMENT})

    run = await finish(await make_relay(), committing_client, run["id"])

    assert (run["status"], run["progress"]["delivered"]) == ("done", 4)
    assert run["progress"]["skipped"] == {"total": 1, "reasons": {"no_identifier": 1}}
    assert sorted(emulator.state.profiles_snapshot()) == sorted(
        ["external_id:fine", "external_id:long-id", "external_id:longer-id",
         f"external_id:{'s' * 400}"]
    )  # fmt: skip


async def test_a_member_whose_data_cannot_be_read_back_fails_and_the_others_are_sent(
    committing_client: httpx.AsyncClient, make_relay: RelayFactory, voucherify: Voucherify,
    emulator: Emulator,
) -> None:  # fmt: skip
    """A number of 400 digits is JSON Postgres keeps, but not one the worker can read back (it
    reads as a double): stored, it stopped the code lane for every delivery it claimed with."""
    state = voucherify.state
    opted_in = {"braze_opt_in": True}
    fine = [state.add_customer(source_id=f"fine-{n}", metadata=opted_in) for n in range(3)]
    huge = state.add_customer(source_id="huge", metadata={**opted_in, "points": 10**400})
    distribution_id = await add_distribution(committing_client)
    listed = [fine[0].id, huge.id, fine[1].id, fine[2].id]
    run = await start_run(committing_client, distribution_id, {"customer_ids": listed})

    run = await finish(await make_relay(), committing_client, run["id"])

    assert (run["status"], run["progress"]["delivered"]) == ("done", 3)
    assert run["progress"]["failed"] == {"total": 1, "reasons": {"invalid_customer": 1}}
    assert sorted(emulator.state.profiles_snapshot()) == [f"external_id:fine-{n}" for n in range(3)]


async def test_a_member_postgres_refuses_fails_alone_and_its_page_is_stored(
    committing_client: httpx.AsyncClient, make_relay: RelayFactory, voucherify: Voucherify,
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Whatever no check foresaw (here a NUL the envelope brings in): the page is stored member
    by member instead of being paged again at every lease for ever."""
    customers = voucherify.segment(4)
    poison = customers[2].id

    def envelope(**kwargs: Any) -> dict[str, Any]:
        made = run_envelope(**kwargs)
        if kwargs["customer"]["id"] == poison:
            made["data"]["segment"]["name"] = "seg\x00"
        return made

    monkeypatch.setattr("app.runs.executor.run_envelope", envelope)
    distribution_id = await add_distribution(committing_client)
    run = await start_run(committing_client, distribution_id, {"segment_id": SEGMENT})

    run = await finish(await make_relay(), committing_client, run["id"])

    assert (run["status"], run["progress"]["processed"]) == ("done", 4)
    assert run["progress"]["delivered"] == 3
    assert run["progress"]["failed"] == {"total": 1, "reasons": {"invalid_customer": 1}}
