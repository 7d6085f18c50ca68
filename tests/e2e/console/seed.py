"""Data for the browser tests: distributions through the API, settled deliveries in SQL
(a failed delivery needs a Braze that failed; here it is written as the worker would)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from tests.e2e.console.conftest import Served
from tests.factories import distribution_body, sample


def distribution(served: Served, **overrides: Any) -> str:
    body = distribution_body(name=f"welcome-{uuid.uuid4().hex[:6]}", consent=None, **overrides)
    with served.api() as api:
        response = api.post("/api/v1/distributions", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def settled(served: Served, distribution_id: str, user: str, *, status: str = "failed") -> int:
    """A stored segment-entered event of `user` and its delivery, settled as `status`."""
    body = sample("customer.segment.entered")
    body["event"]["id"] = f"evt_{uuid.uuid4().hex}"
    body["data"]["customer"]["source_id"] = user
    event = served.sql(
        """INSERT INTO webhook_events (voucherify_event_id, source_id, source_object, event_type,
               customer_source_id, raw_body, signature_result, outcome, deliveries_created)
           VALUES ($1, $2, 'distribution', $3, $4, $5, 'valid_raw', 'matched', 1) RETURNING id""",
        body["event"]["id"], body["source"]["id"], body["event"]["type"], user,
        json.dumps(body).encode(),
    )[0]["id"]  # fmt: skip
    attributes = json.dumps({"external_id": user, "welcome_code": f"CODE-{user.upper()}"})
    delivery = served.sql(
        """INSERT INTO deliveries (distribution_id, distribution_version, event_id,
               braze_user_key, attributes, status, attempts, last_error, event_time)
           VALUES ($1, 1, $2, $3, $4::jsonb, $5, 3, $6, now()) RETURNING id""",
        uuid.UUID(distribution_id), event, f"external_id:{user}", attributes, status,
        "Braze answered 500 three times" if status != "delivered" else None,
    )[0]["id"]  # fmt: skip
    served.sql(
        "INSERT INTO delivery_attempts (delivery_id, outcome, message) VALUES ($1, $2, $3)",
        delivery,
        "dead" if status == "dead" else "failed",
        "Braze answered 500",
    )
    return int(delivery)
