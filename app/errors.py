"""The domain error hierarchy; `app.main` turns each into one HTTP answer."""

from __future__ import annotations

# Seconds a client (Voucherify) is asked to wait before retrying when the database is down.
DATABASE_RETRY_AFTER_SECONDS = 30


def error_body(code: str, message: str, details: object = None) -> dict[str, object]:
    """The one JSON shape of every error answer."""
    error: dict[str, object] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


class VoucherRelayError(Exception):
    """Base of every error this service raises on purpose."""

    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, *, details: object = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ConfigError(VoucherRelayError):
    """A setting is unusable; the message names the setting and is shown as one line at start."""

    code = "config_error"


class NotFoundError(VoucherRelayError):
    status_code = 404
    code = "not_found"


class ConflictError(VoucherRelayError):
    status_code = 409
    code = "conflict"


class DatabaseUnavailableError(VoucherRelayError):
    """Postgres cannot be reached; callers (Voucherify) should retry later."""

    status_code = 503
    code = "database_unavailable"
