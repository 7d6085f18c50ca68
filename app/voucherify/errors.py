"""What the Voucherify client raises: one small branch of the service's error hierarchy.

Every message is built from Voucherify's answer (its `key`, `message` and `details`) or from the
transport error's text, with the app token scrubbed out before it gets here.
"""

from __future__ import annotations

from app.errors import VoucherRelayError


class VoucherifyError(VoucherRelayError):
    """Voucherify did not do what was asked; `status_code` is what our own API would answer."""

    status_code = 502
    code = "voucherify_error"


class VoucherifyRequestError(VoucherifyError):
    """Voucherify refused the request (a 4xx other than 429). `http_status` is its status;
    `key` its error key (e.g. `invalid_publish_params`), None when the body had none."""

    code = "voucherify_request_error"

    def __init__(
        self,
        message: str,
        *,
        http_status: int,
        key: str | None = None,
        details: object = None,
    ) -> None:
        super().__init__(message, details=details)
        self.http_status = http_status
        self.key = key

    def __str__(self) -> str:
        return f"Voucherify answered {self.http_status} {self.key or 'error'}: {self.message}"


class CampaignNotFoundError(VoucherifyRequestError):
    """The campaign to publish from does not exist (404)."""

    code = "campaign_not_found"


class CampaignExhaustedError(VoucherifyRequestError):
    """The campaign has no code left to publish (`no_voucher_suitable_for_publication`)."""

    code = "campaign_exhausted"


class CustomerNotFoundError(VoucherifyRequestError):
    """No customer has this id or source_id (404)."""

    code = "customer_not_found"


class VoucherifyUnavailableError(VoucherifyError):
    """Voucherify kept failing (5xx, timeouts, refused connections) for `attempts` tries; the
    caller should try again later. `http_status` is the last status, None without an answer."""

    status_code = 503
    code = "voucherify_unavailable"

    def __init__(self, message: str, *, attempts: int, http_status: int | None = None) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.http_status = http_status


class VoucherifyRateLimitedError(VoucherifyUnavailableError):
    """Voucherify kept answering 429, or asked for a wait longer than the client may sleep (the
    billing-cycle limit, say). `retry_after` is the wait it asked for, in seconds."""

    code = "voucherify_rate_limited"

    def __init__(self, message: str, *, attempts: int, retry_after: float | None) -> None:
        super().__init__(message, attempts=attempts, http_status=429)
        self.retry_after = retry_after


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
