"""The HTTP side of the Voucherify client: one pooled connection set carrying the auth
headers, the rate budget awaited before every request, and the retries.

A 429 is waited out as Voucherify asks (and holds back every caller of this connection; a wait
longer than the client may sleep refuses every call until it is over, see `call`); 5xx,
timeouts and refused connections are retried with capped exponential backoff. The app token
lives only in the pooled client's default headers and is scrubbed from every text we keep.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import SecretStr

from app.metrics.labels import OTHER
from app.metrics.registry import count_voucherify_request
from app.voucherify.errors import (
    VoucherifyError,
    VoucherifyRateLimitedError,
    VoucherifyRequestError,
    VoucherifyUnavailableError,
)
from app.voucherify.ratelimit import Clock, RateBudget, Sleep
from app.voucherify.retry import backoff_delay, is_retryable_status, rate_limit_wait

logger = logging.getLogger(__name__)

_CONNECT_TIMEOUT_SECONDS = 5.0
MASK = "**********"
TEXT_LIMIT = 300
Params = Mapping[str, str | int]

VOUCHERIFY_ENDPOINTS = frozenset({"publications", "customers", "vouchers"})


def voucherify_endpoint(path: str) -> str:
    """`/v1/customers/cust_123` -> `customers`: the resource, never an id."""
    parts = path.strip("/").split("/")
    resource = parts[1] if len(parts) > 1 else ""
    return resource if resource in VOUCHERIFY_ENDPOINTS else OTHER


class VoucherifyConnection:
    """Sends requests to one Voucherify project; see `VoucherifyClient` for the settings."""

    def __init__(
        self,
        *,
        base_url: str,
        app_id: str,
        app_token: SecretStr,
        timeout: float,
        requests_per_minute: int,
        max_attempts: int,
        backoff: tuple[float, float],
        max_rate_limit_retries: int,
        max_rate_limit_wait: float,
        max_connections: int,
        transport: httpx.AsyncBaseTransport | None,
        clock: Clock,
        sleep: Sleep,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._app_token = app_token
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._max_rate_limit_retries = max_rate_limit_retries
        self._max_rate_limit_wait = max_rate_limit_wait
        self._clock = clock
        self._sleep = sleep
        self.budget = RateBudget(requests=requests_per_minute, clock=clock, sleep=sleep)
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers={
                "X-App-Id": app_id,
                "X-App-Token": app_token.get_secret_value(),
                "Accept": "application/json",
            },
            timeout=httpx.Timeout(timeout, connect=min(timeout, _CONNECT_TIMEOUT_SECONDS)),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            transport=transport,
            # A redirect would carry the token to whatever host it names.
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"VoucherifyConnection(base_url={str(self._http.base_url)!r}, app_token='{MASK}')"

    async def call(
        self, method: str, path: str, *, params: Params | None = None, json: object = None
    ) -> httpx.Response:
        """Send one request within the budget and return the first answer that is neither a
        429 nor a retryable 5xx. Raises VoucherifyRateLimitedError or
        VoucherifyUnavailableError when the retries are spent, and VoucherifyRateLimitedError
        without sending while a 429's wait longer than `max_rate_limit_wait` lasts."""
        failures = rate_limited = 0
        while True:
            held = self.budget.blocked_for()
            if held > self._max_rate_limit_wait:
                # A 429 asked for a long wait (a quota): sending would only spend another try.
                raise VoucherifyRateLimitedError(
                    f"{method} {path}: not sent, Voucherify asked to wait {held:.0f} s more",
                    attempts=rate_limited,
                    retry_after=held,
                )
            await self.budget.acquire()
            status: int | None = None
            started = time.perf_counter()
            try:
                response = await self._http.request(method, path, params=params, json=json)
            except httpx.TransportError as exc:
                count_voucherify_request(voucherify_endpoint(path), None, exc)
                # Only the text survives: the exception holds the request and so the token.
                failure = self.scrub(f"{type(exc).__name__}: {exc}"[:TEXT_LIMIT])
            else:
                status = response.status_code
                count_voucherify_request(voucherify_endpoint(path), status)
                elapsed_ms = (time.perf_counter() - started) * 1000
                logger.debug("voucherify %s %s -> %d in %.0f ms", method, path, status, elapsed_ms)
                if status == 429:
                    rate_limited += 1
                    self._wait_out_429(response, what=f"{method} {path}", count=rate_limited)
                    continue
                if not is_retryable_status(status):
                    return response
                failure = f"HTTP {status} {self.scrub(response.text[:TEXT_LIMIT])}".strip()
            failures += 1
            if failures >= self._max_attempts:
                raise VoucherifyUnavailableError(
                    f"{method} {path} failed {failures} times, last with {failure}",
                    attempts=failures,
                    http_status=status,
                )
            delay = backoff_delay(attempt=failures, base=self._backoff[0], cap=self._backoff[1])
            logger.warning("voucherify %s %s: %s; retrying in %.1f s", method, path, failure, delay)
            await self._sleep(delay)

    async def get_json(self, path: str, *, params: Params | None = None) -> dict[str, Any]:
        """GET `path` and return its JSON object; any refusal raises VoucherifyRequestError."""
        return self.json(await self.call("GET", path, params=params))

    def json(self, response: httpx.Response) -> dict[str, Any]:
        """The body of a 2xx answer as a JSON object; raises the request error of any other."""
        if not response.is_success:
            raise self.error(response)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            text = self.scrub(response.text[:TEXT_LIMIT])
            raise VoucherifyError(f"Voucherify answered {response.status_code} with {text!r}")
        return body

    def error(
        self, response: httpx.Response, cls: type[VoucherifyRequestError] = VoucherifyRequestError
    ) -> VoucherifyRequestError:
        """The refusal in `response` as `cls`, with Voucherify's key, message and details."""
        body = error_body(response)
        key = body.get("key")
        message = body.get("message") or response.reason_phrase or "error"
        details = body.get("details")
        text = f"{message}: {details}" if details else str(message)
        return cls(
            self.scrub(text)[:TEXT_LIMIT],
            http_status=response.status_code,
            key=str(key) if key is not None else None,
            details=self.scrub(str(details)) if details is not None else None,
        )

    def scrub(self, text: str) -> str:
        """`text` without the app token: Voucherify never echoes it, but a proxy might."""
        secret = self._app_token.get_secret_value()
        return text.replace(secret, MASK) if secret else text

    async def aclose(self) -> None:
        await self._http.aclose()

    def _wait_out_429(self, response: httpx.Response, *, what: str, count: int) -> None:
        """Hold the budget until Voucherify takes calls again, or raise when we may not wait."""
        asked = rate_limit_wait(response.headers, now=self._clock())
        if asked is not None:
            # Blocking the budget, not only this call, holds back the other callers as well;
            # past `max_rate_limit_wait` they are refused at once (see `call`).
            self.budget.block_until(self._clock() + asked)
        if count > self._max_rate_limit_retries or (
            asked is not None and asked > self._max_rate_limit_wait
        ):
            raise VoucherifyRateLimitedError(
                f"{what}: Voucherify answered 429 {count} times"
                + ("" if asked is None else f", asking to wait {asked:.0f} s"),
                attempts=count,
                retry_after=asked,
            )
        # Without a hint, back off as for a 5xx, but never less than a second.
        wait = asked if asked is not None else max(1.0, backoff_delay(attempt=count))
        logger.warning("voucherify %s: 429, waiting %.1f s", what, wait)
        self.budget.block_until(self._clock() + wait)


def error_body(response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object, or {} when it has none."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
