"""What the sandbox does once everything answers, as a user would through the API: the example
distributions, the sample webhook signed with the sandbox's secret, and a manual run."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from app.distributions import files

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "distributions"
SAMPLE_WEBHOOK = REPO / "tests" / "fixtures" / "events" / "customer.segment.entered.json"
WAIT_SECONDS = 60.0


class TourFailed(Exception):
    """A step did not turn out as the sandbox expects; the message says which."""


def upsert_distributions(api: httpx.Client) -> list[tuple[str, str]]:
    """The example distributions, by name: created, replaced (to the example) or unchanged."""
    live = {d["name"]: d for d in _ok(api.get("/distributions")).json()["items"]}
    done = []
    for config in files.check([EXAMPLES]).configs:
        body = config.model_dump(mode="json")
        existing = live.get(config.name)
        if existing is None:
            _ok(api.post("/distributions", json=body))
            done.append((config.name, "created"))
        elif {k: existing.get(k) for k in body} == body:
            done.append((config.name, "unchanged"))
        else:
            _ok(api.put(f"/distributions/{existing['id']}", json=body))
            done.append((config.name, "replaced"))
    return done


def distribution_id(api: httpx.Client, name: str) -> str:
    items = _ok(api.get("/distributions")).json()["items"]
    return str(next(d["id"] for d in items if d["name"] == name))


def fresh_sample_webhook() -> tuple[bytes, str]:
    """The sample webhook with new ids and the time now: a new event each time (the relay
    stores an event once, and keeps the newest value per attribute), and its `event.id`."""
    body: dict[str, Any] = json.loads(SAMPLE_WEBHOOK.read_text())
    suffix = uuid.uuid4().hex[:12]
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    body["id"], body["created_at"] = f"whs_sandbox_{suffix}", now
    body["event"].update(id=f"evcus_sandbox_{suffix}", created_at=now)
    return json.dumps(body).encode(), body["event"]["id"]


def send_webhook(relay: httpx.Client, body: bytes, *, secret: str) -> dict[str, Any]:
    """POST it as Voucherify does: the hex HMAC-SHA256 of the body in x-voucherify-signature."""
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    answer = relay.post(
        "/webhooks/voucherify", content=body,
        headers={"x-voucherify-signature": signature, "Content-Type": "application/json"},
    )  # fmt: skip
    result: dict[str, Any] = _ok(answer).json()
    return result | {"status": answer.status_code}


def wait_delivered(api: httpx.Client, event_id: int) -> list[dict[str, Any]]:
    """The event's deliveries, once none is pending any more."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        items: list[dict[str, Any]] = _ok(
            api.get("/deliveries", params={"event_id": event_id})
        ).json()["items"]
        if items and all(d["status"] not in ("pending", "in_flight") for d in items):
            return items
        if time.monotonic() > deadline:
            raise TourFailed(f"the webhook's deliveries are still on their way: {items}")
        time.sleep(0.2)


def run_to_segment(api: httpx.Client, distribution: str, segment_id: str) -> dict[str, Any]:
    """A manual run, sent now rather than in 10 minutes; its state once it is finished."""
    run = _ok(api.post(
        f"/distributions/{distribution}/runs",
        json={"audience": {"segment_id": segment_id}, "send_now": True, "delay_seconds": 0},
    )).json()  # fmt: skip
    deadline = time.monotonic() + WAIT_SECONDS
    while run["status"] in ("scheduled", "running"):
        if time.monotonic() > deadline:
            raise TourFailed(f"run {run['id']} is still {run['status']}: {run['progress']}")
        time.sleep(0.2)
        run = _ok(api.get(f"/runs/{run['id']}")).json()
    return dict(run)


def _ok(answer: httpx.Response) -> httpx.Response:
    if answer.is_success:
        return answer
    raise TourFailed(
        f"{answer.request.method} {answer.request.url.path} answered {answer.status_code}: "
        f"{answer.text[:300]}"
    )
