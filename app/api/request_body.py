"""The door: what a request body may cost before anyone knows who sent it.

An ASGI middleware in front of everything reads the bodies of the webhook and of the ops API
itself, under three limits, and hands the application the body whole:
- size: a declared Content-Length over the path's limit is answered 413 before any byte is
  read; a body without one is counted as it arrives and refused as soon as it passes the limit.
- time: the body must arrive whole within REQUEST_BODY_TIMEOUT_SECONDS of the headers (408).
- a total: bytes held for requests not yet authenticated stay within
  UNAUTHENTICATED_BODY_BUDGET_BYTES across the whole process.

The ops API is authenticated by its bearer token, in the headers: a request with a body and
without a valid token is answered 401 before its body is read, and one with a valid token is
authenticated, so its bytes do not count. A webhook is authenticated by its signature, which
needs the whole body: its bytes count from their arrival until the body is complete; the
application then checks the signature in the same step of the event loop (nothing awaited in
between), so no unverified body is held past that.

When a chunk would take the total over, the requests that have held unverified bytes longest
are refused (503, Retry-After) and their bytes dropped, oldest first; if that is not enough, the
request the chunk belongs to is refused. A real webhook arrives whole within milliseconds and is
verified at once, so it is always among the newest holders, while bodies held open to fill
memory are the oldest: a flood starves a genuine webhook only by sending the whole budget within
that webhook's few milliseconds. Bytes the server has buffered and not yet handed over are not
counted here; uvicorn stops reading a connection past 64 KiB of them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from app.errors import error_body
from app.metrics.registry import REQUEST_BODIES_REFUSED
from app.observability import request_id, request_id_from

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Reason = Literal["too_large", "timeout", "budget", "unauthenticated"]

logger = logging.getLogger(__name__)

# Seconds a client refused for want of room is asked to wait: slow bodies are cut after
# REQUEST_BODY_TIMEOUT_SECONDS at most, most room comes back sooner.
BUDGET_RETRY_AFTER_SECONDS = 1
# A flood is refused thousands of times a second: one log line per reason this often, at most.
LOG_EVERY_SECONDS = 10.0
REASONS: tuple[Reason, ...] = ("too_large", "timeout", "budget", "unauthenticated")


@dataclass(frozen=True)
class Admission:
    """How the door reads one request's body (from `admit`, per request)."""

    limit: int  # the most bytes this body may have
    limit_setting: str  # named in the 413 answer
    authenticated: bool  # False: its bytes count against the budget until the body is whole
    refusal: str | None = None  # a 401 message: answered before any byte is read
    on_refused: Callable[[int], None] | None = None  # told the status of each refusal


Admit = Callable[[Scope], Admission | None]


class _Holder:
    """One request's unverified bytes, and the timer that cuts its body short."""

    __slots__ = ("evicted", "held", "timer")

    def __init__(self) -> None:
        self.held = 0
        self.evicted = False
        self.timer: asyncio.Timeout | None = None


class BodyBudget:
    """Bytes held for bodies not yet authenticated, across every request of the process."""

    def __init__(self) -> None:
        self.held = 0
        self._holders: dict[_Holder, None] = {}  # oldest first (insertion order)

    def take(self, holder: _Holder, size: int, limit: int) -> bool:
        """Count `size` more bytes for `holder`, refusing older holders to stay within `limit`;
        False when even that is not enough (the caller refuses its own request)."""
        holder.held += size
        self.held += size
        self._holders.setdefault(holder, None)
        while self.held > limit:
            older = next(iter(self._holders))
            if older is holder:
                break
            self.release(older)
            older.evicted = True
            # Its body's read stops at once (TimeoutError there), unless its time is up already.
            if older.timer is not None and not older.timer.expired():
                older.timer.reschedule(asyncio.get_running_loop().time())
        return self.held <= limit

    def release(self, holder: _Holder) -> None:
        self.held -= holder.held
        holder.held = 0
        self._holders.pop(holder, None)


class _RefusedError(Exception):
    def __init__(self, reason: Reason, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.status, self.code, self.message = reason, status, code, message


class RequestBodyDoor:
    """ASGI middleware: reads the body of every request `admit` admits under the limits above,
    then hands it on whole; requests `admit` returns None for pass through untouched."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        admit: Admit,
        budget_limit: Callable[[], int],
        timeout: Callable[[], float],
    ) -> None:
        self.app = app
        self.admit = admit
        self.budget = BodyBudget()  # one per process: the API runs one application
        self.budget_limit = budget_limit  # read per request: the settings are the app's
        self.timeout = timeout
        self._logged: dict[Reason, tuple[float, int]] = {}  # last line's time, refusals since

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        admission = self.admit(scope) if scope["type"] == "http" and _has_body(scope) else None
        if admission is None:
            await self.app(scope, receive, send)
            return
        try:
            body = await self._read(scope, receive, admission)
        except _RefusedError as refused:
            await self._refuse(scope, send, refused, admission)
            return
        if body is None:  # the client went away: nobody to answer
            return
        await self.app(scope, replaying(body, receive), send)

    async def _read(self, scope: Scope, receive: Receive, admission: Admission) -> bytes | None:
        if admission.refusal is not None:
            raise _RefusedError("unauthenticated", 401, "unauthorized", admission.refusal)
        declared = header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > admission.limit:
            raise _too_large(f"the body is {declared} bytes", admission)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout()
        holder = _Holder()
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout_at(deadline) as holder.timer:
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return None
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > admission.limit:
                        raise _too_large("the body is larger", admission)
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
                    if not admission.authenticated and not self.budget.take(
                        holder, len(chunk), self.budget_limit()
                    ):
                        raise _budget_exhausted()
        except TimeoutError:
            if holder.evicted:
                raise _budget_exhausted() from None
            late = f"the body did not arrive within {self.timeout():g} s"
            raise _RefusedError("timeout", 408, "body_timeout", late) from None
        finally:
            self.budget.release(holder)
        return b"".join(chunks)

    async def _refuse(
        self, scope: Scope, send: Send, refused: _RefusedError, admission: Admission
    ) -> None:
        REQUEST_BODIES_REFUSED.labels(refused.reason).inc()
        if admission.on_refused is not None:
            admission.on_refused(refused.status)
        rid = request_id_from(header(scope, b"x-request-id"))
        request_id.set(rid)  # the refusal's log line and answer carry it, as others do
        self._log(scope, refused)
        body = orjson.dumps(error_body(refused.code, refused.message))
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            # The rest of the body is not read: this connection carries no further request.
            (b"connection", b"close"),
            (b"x-request-id", rid.encode("latin-1")),
        ]
        if refused.status == 503:
            headers.append((b"retry-after", str(BUDGET_RETRY_AFTER_SECONDS).encode()))
        await send({"type": "http.response.start", "status": refused.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _log(self, scope: Scope, refused: _RefusedError) -> None:
        """Method, path, reason and counts only: never a header or a byte of the body."""
        now = asyncio.get_running_loop().time()
        last, since = self._logged.get(refused.reason, (-LOG_EVERY_SECONDS, 0))
        if now - last < LOG_EVERY_SECONDS:
            self._logged[refused.reason] = (last, since + 1)
            return
        self._logged[refused.reason] = (now, 0)
        logger.log(
            logging.WARNING if refused.reason == "budget" else logging.INFO,
            "request body refused (%s, %d): %s %r, and %d more for this reason since the last "
            "such line; %d bytes held for unauthenticated bodies",
            refused.reason, refused.status, scope["method"], scope["path"], since,
            self.budget.held,
        )  # fmt: skip


def replaying(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives `body` whole, then whatever `receive` gives (the disconnect)."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if delivered:
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _too_large(what: str, admission: Admission) -> _RefusedError:
    message = f"{what} than the limit of {admission.limit} bytes ({admission.limit_setting})"
    return _RefusedError("too_large", 413, "body_too_large", message)


def _budget_exhausted() -> _RefusedError:
    message = (
        "too many request bodies are arriving from unauthenticated senders; retry shortly "
        "(UNAUTHENTICATED_BODY_BUDGET_BYTES)"
    )
    return _RefusedError("budget", 503, "busy", message)


def _has_body(scope: Scope) -> bool:
    """Whether the request says it carries a body (HTTP/1.1: a length, or chunked)."""
    for name, value in scope["headers"]:
        if (name == b"content-length" and value != b"0") or name == b"transfer-encoding":
            return True
    return False


def header(scope: Scope, name: bytes) -> str | None:
    return next((v.decode("latin-1") for k, v in scope["headers"] if k == name), None)


for _reason in REASONS:  # exported at 0, so that increase() sees the first refusal
    REQUEST_BODIES_REFUSED.labels(_reason)
