"""An operator's flows through the console in a real headless Chromium."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.console import seed
from tests.e2e.console.conftest import READ, WRITE, Served, screenshot, serious_violations, sign_in
from tests.factories import sample

pytestmark = pytest.mark.e2e


def test_sign_in_with_the_keyboard_shows_the_overview(page: Any) -> None:
    page.goto("/console")
    assert "/console/sign-in" in page.url
    screenshot(page, "sign-in")
    sign_in(page, WRITE)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.locator("#data-points-saved")).to_be_visible()


def test_find_a_customer_and_replay_a_failed_delivery(page: Any, served: Served) -> None:
    distribution_id = seed.distribution(served)
    user = f"mia-{uuid.uuid4().hex[:6]}"
    delivery_id = seed.settled(served, distribution_id, user)
    sign_in(page, WRITE)
    page.get_by_role("link", name="Customer").click()
    page.get_by_label("Source id, Voucherify id, email or Braze id").fill(user)
    page.keyboard.press("Enter")
    expect(page.get_by_text(f"CODE-{user.upper()}")).to_be_visible()
    screenshot(page, "customer")
    page.get_by_role("button", name=f"Replay delivery {delivery_id}").click()
    page.get_by_text("Queued again.").wait_for()
    # `serve`'s worker sends it to the Braze emulator: the delivery page says so.
    page.goto(f"/console/deliveries/{delivery_id}")
    for _ in range(50):
        if page.locator("h1 .status-delivered").count():
            break
        page.wait_for_timeout(200)
        page.reload()
    assert page.locator("h1").inner_text().endswith("delivered")
    expect(page.get_by_text("manual").first).to_be_visible()
    screenshot(page, "delivery")


def test_create_a_distribution_with_a_preview(page: Any) -> None:
    sign_in(page, WRITE)
    page.goto("/console/distributions/new")
    name = f"birthday-{uuid.uuid4().hex[:6]}"
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("customer.publication.succeeded", exact=True).check()
    page.get_by_label("Field 1").fill("voucher.code")
    page.get_by_label("Attribute 1").fill("birthday_code")
    event = sample("customer.publication.succeeded")
    page.get_by_label("A webhook body to try").fill(json.dumps(event))
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#preview-outcome")).to_have_text("send")
    assert event["data"]["voucher"]["code"] in page.locator("#preview-object").inner_text()
    screenshot(page, "distribution-new")
    page.get_by_role("button", name="Create").click()
    page.wait_for_url(re.compile(r"/console/distributions/[0-9a-f-]{36}$"))
    expect(page.get_by_role("button", name="Copy tag of birthday_code")).to_be_visible()
    page.goto("/console/distributions")
    expect(page.get_by_role("link", name=name)).to_be_visible()
    screenshot(page, "distributions")


def test_a_new_distribution_s_errors_stand_next_to_their_fields(page: Any) -> None:
    sign_in(page, WRITE)
    page.goto("/console/distributions/new")
    page.get_by_label("Name", exact=True).fill(f"broken-{uuid.uuid4().hex[:6]}")
    page.get_by_label("customer.segment.entered", exact=True).check()
    page.get_by_label("Field 1").fill("voucher.code")
    page.get_by_label("Attribute 1").fill("code")
    page.get_by_label("Field 2").fill("voucher.no_such_field")
    page.get_by_label("Attribute 2").fill("other")
    page.get_by_role("button", name="Create").click()
    expect(page.locator("#error-source_1-1")).to_contain_text("voucher.no_such_field")
    assert page.get_by_label("Field 2").get_attribute("aria-describedby") == "error-source_1-1"


def test_run_a_bulk_replay_through_its_plan(page: Any, served: Served) -> None:
    distribution_id = seed.distribution(served)
    for n in range(12):
        seed.settled(served, distribution_id, f"bulk-{n}-{uuid.uuid4().hex[:4]}", status="dead")
    sign_in(page, WRITE)
    page.goto("/console/replays")
    page.get_by_label("Distribution").select_option(distribution_id)
    page.get_by_label("Status").select_option("dead")
    page.get_by_role("button", name="See the plan").click()
    expect(page.locator("#plan-count")).to_have_text("12")
    screenshot(page, "replay-plan")
    page.get_by_role("button", name="Confirm: replay 12 deliveries").click()
    page.wait_for_url(re.compile(r"/console/replays/[0-9a-f-]{36}$"))
    # The page polls its progress (htmx, every second) until the worker is done.
    page.locator("#replay-status", has_text="done").wait_for(timeout=30_000)
    assert page.locator("#replay-counts").inner_text().startswith("12 of 12 looked at, 12 queued")
    screenshot(page, "replay")
    page.goto("/console/replays")
    screenshot(page, "replays")


def test_start_a_run_and_cancel_it_within_its_delay(page: Any, served: Served) -> None:
    distribution_id = seed.distribution(
        served, triggers=["manual_distribution_schedule"],
        code_source={"type": "publish", "campaign": "welcome"},
    )  # fmt: skip
    sign_in(page, WRITE)
    page.goto("/console/runs")
    page.get_by_label("Distribution").select_option(distribution_id)
    page.get_by_label("listed source ids").check()
    page.get_by_label("Customers, one a line").fill("mia\nnoah\nolivia")
    screenshot(page, "runs")
    page.get_by_role("button", name="Start the run").click()
    page.wait_for_url(re.compile(r"/console/runs/\d+$"))
    expect(page.locator("#run-status")).to_have_text("scheduled")
    assert "0 of 3" in page.locator("#run-counts").inner_text()
    screenshot(page, "run")
    page.get_by_role("button", name="Cancel the run").click()
    page.locator("#run-status", has_text="canceled").wait_for()


def test_a_read_only_token_finds_no_way_to_act(page: Any, served: Served) -> None:
    distribution_id = seed.distribution(served)
    delivery_id = seed.settled(served, distribution_id, f"ro-{uuid.uuid4().hex[:6]}")
    sign_in(page, READ)
    for path in ("/console", "/console/customer?q=ro", "/console/distributions",
                 f"/console/distributions/{distribution_id}", "/console/deliveries",
                 f"/console/deliveries/{delivery_id}", "/console/events", "/console/replays",
                 "/console/runs"):  # fmt: skip
        page.goto(path)
        # What acts: a POST form other than signing out, or an htmx post (GET forms filter).
        acting = page.locator(
            'form[method="post"]:not([action="/console/sign-out"]) button:enabled, [hx-post]'
        )
        assert acting.count() == 0, (path, acting.all_inner_texts())
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    for action in (f"/console/distributions/{distribution_id}/pause",
                   f"/console/deliveries/{delivery_id}/replay"):  # fmt: skip
        forged = page.request.post(action, form={"csrf": csrf})
        assert forged.status == 403, action


def test_no_page_has_serious_accessibility_violations(page: Any, served: Served) -> None:
    distribution_id = seed.distribution(served)
    delivery_id = seed.settled(served, distribution_id, f"a11y-{uuid.uuid4().hex[:6]}")
    event_id = served.sql("SELECT event_id FROM deliveries WHERE id = $1", delivery_id)[0][0]
    page.goto("/console/sign-in")
    found = {"sign-in": serious_violations(page)}
    sign_in(page, WRITE)
    pages = {
        "overview": "/console", "customer": "/console/customer?q=a11y",
        "distributions": "/console/distributions",
        "distribution": f"/console/distributions/{distribution_id}",
        "distribution-new": "/console/distributions/new", "deliveries": "/console/deliveries",
        "delivery": f"/console/deliveries/{delivery_id}", "events": "/console/events",
        "event": f"/console/events/{event_id}", "replays": "/console/replays",
        "runs": "/console/runs",
    }  # fmt: skip
    for name, path in pages.items():
        page.goto(path)
        found[name] = serious_violations(page)
        # Taken last, when the other tests have left data to show.
        if name in ("overview", "deliveries", "events", "event", "distribution"):
            screenshot(page, name)
    assert not any(found.values()), {k: v for k, v in found.items() if v}
