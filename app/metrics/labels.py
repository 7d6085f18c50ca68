"""Label values shared by several metrics, chosen so that every label has a small, fixed set of
values (pure functions).

Prometheus keeps one time series per label combination: a label fed from request data (a
path with an id, a free-text event type) would grow without bound. The label functions that
need a domain's words live beside it: `event_type_label` in app/webhooks/intake.py,
`voucherify_endpoint` in app/voucherify/connection.py, `publication_failure` in
app/voucherify/errors.py.
"""

from __future__ import annotations

import httpx

# Event types outside the triggers voucher-relay handles are counted together.
OTHER = "other"
# Rejected webhooks are not trusted enough to label by what their body claims.
UNVERIFIED = ""


def status_class(status_code: int | None, error: BaseException | None = None) -> str:
    """`2xx`, `429`, `4xx`, `5xx` (also `1xx`, `3xx`) for an answer; `timeout` or
    `connection_error` for a request that got none."""
    if status_code is None:
        return "timeout" if isinstance(error, httpx.TimeoutException) else "connection_error"
    if status_code == 429:
        return "429"
    return f"{status_code // 100}xx"
