"""The domain error hierarchy; `app.main` turns each into one HTTP answer."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from sqlalchemy.exc import StatementError

# Seconds a client (Voucherify) is asked to wait before retrying when the database is down.
DATABASE_RETRY_AFTER_SECONDS = 30


def error_body(code: str, message: str, details: object = None) -> dict[str, object]:
    """The one JSON shape of every error answer."""
    error: dict[str, object] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


def short_error(exc: BaseException) -> str:
    """`Class: message` for a row an operator reads (a replay's last_error). For a database
    error, the driver's class and its message's first line: never the SQL statement and its
    parameters (customer ids), which SQLAlchemy adds to its own message."""
    if not isinstance(exc, StatementError):
        text = str(exc)
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    if exc.orig is None:  # refused before reaching the driver: the message alone
        return f"{type(exc).__name__}: {exc.args[0] if exc.args else ''}"
    # asyncpg through SQLAlchemy: the adapted error is caused by asyncpg's own.
    cause = exc.orig.__cause__
    driver = cause if isinstance(cause, Exception) else exc.orig
    first_line = next(iter(str(driver).strip().splitlines()), "")
    return f"{type(driver).__name__}: {first_line}"


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    """What every error answer looks like (OpenAPI), as `error_body` builds it."""

    error: ErrorDetail


_ERROR_DESCRIPTIONS = {
    400: "the body is not valid JSON (UTF-8)",
    401: "missing or unknown bearer token",
    403: "the token is read-only (operations that change something)",
    404: "no such resource (paths with an id)",
    409: "the request conflicts with the current state (e.g. replaying a pending delivery)",
    413: "the body is over API_MAX_BODY_BYTES",
    415: "the body was not sent with Content-Type: application/json",
    422: "the request is invalid; details says where",
    503: "the database is unavailable: retry later (Retry-After); or `filter_too_slow`: the "
    "filter could not be served within OPS_STATEMENT_TIMEOUT_SECONDS (narrow it)",
}
# The errors any ops API operation may answer, declared once per router (`responses=`); the
# OpenAPI document keeps only those each operation can answer (app/openapi/errors.py).
OPS_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text} for code, text in _ERROR_DESCRIPTIONS.items()
}


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


class FileProblems(Exception):
    """Files a command cannot take (`distributions import`); nothing was changed. One line per
    problem, each naming the file and the place in it."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
