"""The Braze `/users/track` client: one pooled HTTP client, one call, one classified result.

It never raises for what Braze or the network does: every outcome is a `BrazeCallResult` that the
worker records and acts on. The API key lives only in the pooled client's default headers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType

import httpx
from pydantic import SecretStr

from app.braze.classify import (
    Classification,
    Kind,
    classify_response,
    classify_transport_error,
    truncate,
)
from app.braze.payload import MAX_OBJECTS_PER_REQUEST, TRACK_PATH, BrazeObject, build_track_body
from app.metrics.registry import observe_braze_request

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 30.0
# Connecting should be quick; waiting long for an answer is worse than retrying elsewhere.
_CONNECT_TIMEOUT_SECONDS = 5.0
DEFAULT_BODY_LIMIT = 2_000
# The answer headers kept for the audit log (lower case: HTTP/2 sends them so anyway).
KEPT_HEADERS = frozenset(
    {
        "content-type",
        "date",
        "retry-after",
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
        "x-ratelimit-retry-after",
        "x-request-id",
    }
)
_MASK = "**********"


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class BrazeCallResult:
    """One `/users/track` call as the audit log keeps it. `status_code` is None without answer."""

    classification: Classification
    status_code: int | None
    headers: dict[str, str]
    body: str
    duration: timedelta
    request_bytes: int
    object_count: int
    error: str | None = None

    @property
    def kind(self) -> Kind:
        return self.classification.kind


class BrazeClient:
    """Sends attribute objects to Braze `POST /users/track` over one pooled connection set."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: SecretStr,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        max_connections: int = 20,
        body_limit: int = DEFAULT_BODY_LIMIT,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        """`transport` replaces the network (tests serve an ASGI app through it); `clock` gives
        the aware `now` that turns an epoch X-RateLimit-Reset into a wait."""
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._deadline = timeout
        self._body_limit = body_limit
        self._clock = clock
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={
                "Authorization": f"Bearer {api_key.get_secret_value()}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
            timeout=httpx.Timeout(timeout, connect=min(timeout, _CONNECT_TIMEOUT_SECONDS)),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            transport=transport,
            # Braze does not redirect; following one would carry the key to another host.
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"BrazeClient(base_url={self.base_url!r}, api_key='{_MASK}')"

    __str__ = __repr__

    async def track(self, objects: Sequence[BrazeObject]) -> BrazeCallResult:
        """POST these attribute objects as one request and classify the answer.

        Never raises for an HTTP status or a transport failure (those become kind `retry` with
        the error text). Raises ValueError only for a call that must not be made: no objects,
        more than Braze accepts in one request, or values JSON cannot carry (NaN).
        """
        if not 1 <= len(objects) <= MAX_OBJECTS_PER_REQUEST:
            raise ValueError(
                f"track takes 1..{MAX_OBJECTS_PER_REQUEST} objects, not {len(objects)}"
            )
        body = build_track_body(objects)
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            # httpx times each phase (connect, write, each read) on its own: an answer that
            # trickles in could outlast the lease the worker holds. One deadline for it all.
            async with asyncio.timeout(self._deadline):
                response = await self._http.post(TRACK_PATH, content=body)
        except (httpx.HTTPError, TimeoutError) as exc:
            error = exc
            result = self._failure(exc, objects=len(objects), request_bytes=len(body))
        else:
            result = self._answer(response, objects=len(objects), request_bytes=len(body))
        result = replace(result, duration=timedelta(seconds=time.perf_counter() - started))
        observe_braze_request(
            status_code=result.status_code, error=error, kind=str(result.kind),
            seconds=result.duration.total_seconds(),
        )  # fmt: skip
        logger.debug(
            "braze track: %d objects, %s bytes -> %s %s in %.0f ms",
            result.object_count,
            result.request_bytes,
            result.status_code if result.status_code is not None else "no answer",
            result.kind,
            result.duration.total_seconds() * 1000,
        )
        return result

    async def aclose(self) -> None:
        """Close the pooled connections; the client cannot be used afterwards."""
        await self._http.aclose()

    async def __aenter__(self) -> BrazeClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _answer(
        self, response: httpx.Response, *, objects: int, request_bytes: int
    ) -> BrazeCallResult:
        # Classify the whole body (75 indexed errors outgrow any truncation), keep a prefix.
        text = self._scrub(response.text)
        headers = {k: self._scrub(v) for k, v in response.headers.items() if k in KEPT_HEADERS}
        classification = classify_response(
            status_code=response.status_code,
            headers=headers,
            body=text,
            object_count=objects,
            now=self._clock(),
        )
        return BrazeCallResult(
            classification=classification,
            status_code=response.status_code,
            headers=headers,
            body=truncate(text, self._body_limit),
            duration=timedelta(0),
            request_bytes=request_bytes,
            object_count=objects,
        )

    def _failure(self, exc: BaseException, *, objects: int, request_bytes: int) -> BrazeCallResult:
        if isinstance(exc, TimeoutError) and not str(exc):
            exc = TimeoutError(f"no whole answer within {self._deadline:g} s")
        classification = classify_transport_error(exc, object_count=objects)
        message = self._scrub(classification.message)
        return BrazeCallResult(
            classification=replace(classification, message=message),
            status_code=None,
            headers={},
            body="",
            duration=timedelta(0),
            request_bytes=request_bytes,
            object_count=objects,
            error=message,
        )

    def _scrub(self, text: str) -> str:
        """Braze never echoes the key, but a proxy or an error text might: keep it out anyway."""
        secret = self._api_key.get_secret_value()
        return text.replace(secret, _MASK) if secret else text
