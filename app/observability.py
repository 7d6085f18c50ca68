"""Logging: JSON lines for log systems (or readable lines in a terminal), with the request id,
and every configured secret redacted from whatever is logged."""

from __future__ import annotations

import contextvars
import logging
import os
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime

import orjson

from app.config import Settings

REDACTED = "[redacted]"
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
# What a caller's X-Request-Id may be to be kept (a trace id, a UUID): it goes into every log
# line of the request and back in the answer, so a long or odd one is not taken as it is.
PLAIN_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def request_id_from(header: str | None) -> str:
    """The caller's X-Request-Id when short and plain, else a new id (32 hex digits)."""
    if header is not None and PLAIN_REQUEST_ID.fullmatch(header):
        return header
    return os.urandom(16).hex()


# Attributes every LogRecord has; anything else passed with `extra=` is logged as a field.
# uvicorn's `color_message` is the message again with terminal escape codes: never a field.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "color_message",
}
# uvicorn logs its start-up and shutdown lines (and server errors) as "uvicorn.error": a name
# that reads as a failure in every log system. They are the HTTP server's lines.
_RENAMED_LOGGERS = {"uvicorn.error": "uvicorn"}
# Libraries that log a line per request or per step at INFO: shown at LOG_LEVEL=debug only.
# (httpx: one per Braze or Voucherify call; alembic: its migration steps, outside `migrate`.)
QUIET_BELOW_DEBUG = ("httpx", "httpcore", "alembic")


def secrets_of(settings: Settings) -> list[str]:
    """Every secret value the settings hold (webhook secrets, API keys, tokens, DB password)."""
    values = [s.get_secret_value() for s in settings.voucherify_webhook_secret]
    for token in settings.ops_api_tokens:
        values.append(token.get_secret_value().split(":", 2)[-1])  # name:scope:token
    for secret in (settings.braze_api_key, settings.voucherify_app_token, settings.metrics_token):
        if secret is not None:
            values.append(secret.get_secret_value())
    if settings.database_url is not None:
        from app.config import parse_database_url

        password = parse_database_url(settings.database_url.get_secret_value()).password
        if password:
            values.append(password)
    # Short values would redact ordinary words; real secrets are long.
    return sorted({v for v in values if len(v) >= 6}, key=len, reverse=True)


class RedactSecrets(logging.Filter):
    """Replaces secret values in the message and its fields before any handler sees them."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = list(secrets)

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg, record.args = self.scrub(message), None
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        fields = vars(record)
        for key in fields.keys() - _STANDARD:  # a set difference: this runs for every line
            value = fields[key]
            if isinstance(value, str):
                fields[key] = self.scrub(value)
        current = request_id.get()
        if current is not None and "request_id" not in fields:
            record.request_id = current
        return True


class ServerNames(logging.Filter):
    """Logs uvicorn's own lines under "uvicorn" rather than "uvicorn.error"."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.name = _RENAMED_LOGGERS.get(record.name, record.name)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = vars(record)
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in [k for k in fields if k not in _STANDARD]:  # in the order they were set
            line.setdefault(key, fields[key])
        if record.exc_text:
            line["exception"] = record.exc_text
        return orjson.dumps(line, default=str).decode()


def configure_logging(settings: Settings, *, json_lines: bool | None = None) -> None:
    """JSON lines unless stderr is a terminal (or `json_lines` says otherwise)."""
    # Every record would also note where it was logged from (a walk up the stack), its thread
    # and its process; no line shows them, and they cost CPU on every line, one per webhook
    # (the logging HOWTO's "Optimization" section names these switches).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    use_json = not sys.stderr.isatty() if json_lines is None else json_lines
    handler.setFormatter(
        JsonFormatter()
        if use_json
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.addFilter(RedactSecrets(secrets_of(settings)))
    handler.addFilter(ServerNames())
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler], force=True)
    quiet = logging.DEBUG if settings.log_level == "debug" else logging.WARNING
    for name in QUIET_BELOW_DEBUG:
        logging.getLogger(name).setLevel(quiet)
