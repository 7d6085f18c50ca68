"""Label values, chosen so that every label has a small, fixed set of values (pure functions).

Prometheus keeps one time series per label combination: a label fed from request data (a
path with an id, a free-text event type) would grow without bound.
"""

from __future__ import annotations

import httpx

from app.distributions.triggers import KNOWN_TRIGGERS
from app.voucherify.errors import (
    CampaignExhaustedError,
    CampaignNotFoundError,
    CustomerNotFoundError,
    VoucherifyUnavailableError,
)

# Event types outside the triggers voucher-relay handles are counted together.
OTHER = "other"
# Rejected webhooks are not trusted enough to label by what their body claims.
UNVERIFIED = ""
VOUCHERIFY_ENDPOINTS = frozenset({"publications", "customers", "vouchers"})


def event_type_label(event_type: str) -> str:
    return event_type if event_type in KNOWN_TRIGGERS else OTHER


def status_class(status_code: int | None, error: BaseException | None = None) -> str:
    """`2xx`, `429`, `4xx`, `5xx` (also `1xx`, `3xx`) for an answer; `timeout` or
    `connection_error` for a request that got none."""
    if status_code is None:
        return "timeout" if isinstance(error, httpx.TimeoutException) else "connection_error"
    if status_code == 429:
        return "429"
    return f"{status_code // 100}xx"


def voucherify_endpoint(path: str) -> str:
    """`/v1/customers/cust_123` -> `customers`: the resource, never an id."""
    parts = path.strip("/").split("/")
    resource = parts[1] if len(parts) > 1 else ""
    return resource if resource in VOUCHERIFY_ENDPOINTS else OTHER


def publication_failure(exc: BaseException) -> str:
    """Why publishing a code failed, as a `result` label."""
    for cls, label in (
        (CampaignExhaustedError, "campaign_exhausted"),
        (CampaignNotFoundError, "campaign_not_found"),
        (CustomerNotFoundError, "customer_not_found"),
        (VoucherifyUnavailableError, "unavailable"),
    ):
        if isinstance(exc, cls):
            return label
    return "refused"
