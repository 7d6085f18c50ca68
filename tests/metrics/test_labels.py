"""Label values come from small, fixed sets."""

from __future__ import annotations

import httpx
import pytest

from app.metrics.labels import status_class
from app.voucherify.connection import voucherify_endpoint
from app.voucherify.errors import (
    CampaignExhaustedError,
    VoucherifyRateLimitedError,
    VoucherifyRequestError,
    publication_failure,
)
from app.webhooks.intake import event_type_label


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        (201, None, "2xx"),
        (429, None, "429"),
        (400, None, "4xx"),
        (401, None, "4xx"),
        (503, None, "5xx"),
        (302, None, "3xx"),
        (None, httpx.ReadTimeout("slow"), "timeout"),
        (None, httpx.ConnectTimeout("slow"), "timeout"),
        (None, httpx.ConnectError("refused"), "connection_error"),
        (None, httpx.RemoteProtocolError("reset"), "connection_error"),
    ],
)
def test_status_class(status: int | None, error: BaseException | None, expected: str) -> None:
    assert status_class(status, error) == expected


def test_event_types_outside_the_known_triggers_are_other() -> None:
    assert event_type_label("customer.order.paid") == "customer.order.paid"
    assert event_type_label("a free-text label of a distribution") == "other"


def test_voucherify_endpoints_never_carry_an_id() -> None:
    assert voucherify_endpoint("/v1/customers/cust_123") == "customers"
    assert voucherify_endpoint("/v1/publications") == "publications"
    assert voucherify_endpoint("/v1/vouchers/CODE-1") == "vouchers"
    assert voucherify_endpoint("/v1/loyalties/x") == "other"


def test_publication_failures_by_cause() -> None:
    assert publication_failure(CampaignExhaustedError("out", http_status=400)) == (
        "campaign_exhausted"
    )
    assert (
        publication_failure(VoucherifyRateLimitedError("later", attempts=6, retry_after=None))
        == "unavailable"
    )
    assert publication_failure(VoucherifyRequestError("no", http_status=400)) == "refused"
