"""The Voucherify API client: publish a code to a customer, read customers, walk a segment.

What each call means lives here; how a request is sent (auth headers, rate budget, 429 waits,
retries) lives in `connection.py`. Refusals raise the errors of `app.voucherify.errors`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from app.metrics.registry import PUBLICATIONS
from app.voucherify.connection import MASK, VoucherifyConnection, error_body
from app.voucherify.errors import (
    CampaignExhaustedError,
    CampaignNotFoundError,
    CustomerNotFoundError,
    VoucherifyError,
    VoucherifyRequestError,
    publication_failure,
)
from app.voucherify.publications import (
    Publication,
    embedded_voucher,
    other_customer,
    pick_existing,
    voucher_reference,
)
from app.voucherify.ratelimit import Clock, Sleep
from app.voucherify.retry import (
    DEFAULT_BACKOFF_BASE_SECONDS,
    DEFAULT_BACKOFF_CAP_SECONDS,
    DEFAULT_MAX_ATTEMPTS,
)
from app.voucherify.segments import MemberCursor

DEFAULT_TIMEOUT_SECONDS = 30.0
MAX_PAGE_SIZE = 100  # `limit` of GET /v1/customers is 1..100 (reference §2.4)


class VoucherifyClient:
    """Calls the Voucherify API of one project over one pooled connection set."""

    def __init__(
        self,
        *,
        base_url: str,
        app_id: str,
        app_token: SecretStr,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        requests_per_minute: int = 100,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        backoff_base: float = DEFAULT_BACKOFF_BASE_SECONDS,
        backoff_cap: float = DEFAULT_BACKOFF_CAP_SECONDS,
        max_rate_limit_retries: int = 5,
        max_rate_limit_wait: float = 120.0,
        max_connections: int = 10,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        """At most `requests_per_minute` requests start in any minute (Business plan: 100).
        5xx and transport errors get `max_attempts` tries, `backoff_base` seconds apart at
        first, doubling up to `backoff_cap`. Up to `max_rate_limit_retries` 429s are waited
        out, each for at most `max_rate_limit_wait` seconds: a longer wait (the monthly quota,
        say) raises VoucherifyRateLimitedError at once so that the caller can reschedule, and
        so does every call until that wait is over (none is sent meanwhile).
        `transport` replaces the network in tests; `clock` (Unix seconds) and `sleep` drive the
        budget and every wait."""
        self.base_url = base_url.rstrip("/")
        self.app_id = app_id
        self._connection = VoucherifyConnection(
            base_url=self.base_url,
            app_id=app_id,
            app_token=app_token,
            timeout=timeout,
            requests_per_minute=requests_per_minute,
            max_attempts=max_attempts,
            backoff=(backoff_base, backoff_cap),
            max_rate_limit_retries=max_rate_limit_retries,
            max_rate_limit_wait=max_rate_limit_wait,
            max_connections=max_connections,
            transport=transport,
            clock=clock,
            sleep=sleep,
        )

    def __repr__(self) -> str:
        return (
            f"VoucherifyClient(base_url={self.base_url!r}, app_id={self.app_id!r}, "
            f"app_token='{MASK}')"
        )

    __str__ = __repr__

    async def publish(
        self, *, campaign: str, customer: Mapping[str, Any], source_id: str
    ) -> Publication:
        """Publish one code of `campaign` (its name or id) to `customer` (`id` and/or
        `source_id`, optionally email, name, metadata) under our key `source_id`.

        The same `source_id` always yields the same code: when Voucherify answers
        `duplicate_source_id` the existing publication is read back (`reused=True`). Raises
        CampaignExhaustedError, CampaignNotFoundError, CustomerNotFoundError (a `customer.id`
        Voucherify does not know), VoucherifyRequestError for other refusals, and
        VoucherifyUnavailableError when Voucherify cannot be reached.
        """
        try:
            publication = await self._publish(
                campaign=campaign, customer=customer, source_id=source_id
            )
        except VoucherifyError as exc:
            PUBLICATIONS.labels(publication_failure(exc)).inc()
            raise
        PUBLICATIONS.labels("reused" if publication.reused else "published").inc()
        return publication

    async def _publish(
        self, *, campaign: str, customer: Mapping[str, Any], source_id: str
    ) -> Publication:
        body = {"campaign": {"name": campaign}, "customer": dict(customer), "source_id": source_id}
        # Retrying a POST is safe here: a repeat with this source_id cannot publish a second code.
        response = await self._connection.call("POST", "/v1/publications", json=body)
        if response.is_success:
            return await self._publication(self._connection.json(response), source_id=source_id)
        refusal = error_body(response)
        if refusal.get("key") == "duplicate_source_id":
            return await self._existing_publication(source_id=source_id, customer=customer)
        if refusal.get("key") == "no_voucher_suitable_for_publication":
            raise self._connection.error(response, CampaignExhaustedError)
        if response.status_code == 404:
            missing = refusal.get("resource_type")
            cls = CustomerNotFoundError if missing == "customer" else CampaignNotFoundError
            raise self._connection.error(response, cls)
        raise self._connection.error(response)

    async def get_voucher(self, code_or_id: str) -> dict[str, Any]:
        """The voucher with this code or id, as Voucherify returns it."""
        return await self._connection.get_json(f"/v1/vouchers/{quote(code_or_id, safe='')}")

    async def get_customer(self, customer_id_or_source_id: str) -> dict[str, Any]:
        """The customer with this id or source_id. Raises CustomerNotFoundError on 404."""
        path = f"/v1/customers/{quote(customer_id_or_source_id, safe='')}"
        response = await self._connection.call("GET", path)
        if response.status_code == 404:
            raise self._connection.error(response, CustomerNotFoundError)
        return self._connection.json(response)

    async def count_segment(self, segment_id: str) -> int:
        """How many customers the segment holds (the `total` of a one-customer page)."""
        params: dict[str, str | int] = {"segment_id": segment_id, "limit": 1}
        total = (await self._connection.get_json("/v1/customers", params=params)).get("total")
        if not isinstance(total, int):
            raise VoucherifyError(f"the customer list of segment {segment_id} has no total")
        return total

    async def iter_segment_members(
        self, segment_id: str, *, page_size: int = MAX_PAGE_SIZE, after: MemberCursor | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Every customer of the segment once, oldest first, `page_size` (1..100) a request,
        paged by the `starting_after` cursor only (see `segments.py` for why). `after` resumes
        a walk past the customers it has seen (the client moves it along).

        Raises VoucherifyError when more than a page of customers share one creation
        millisecond, which no cursor can page past.
        """
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be within 1..{MAX_PAGE_SIZE}")
        cursor = after or MemberCursor()
        while True:
            params: dict[str, str | int] = {
                "segment_id": segment_id,
                "limit": page_size,
                "order": "created_at",
            }
            starting_after = cursor.starting_after()
            if starting_after is not None:
                params["starting_after"] = starting_after
            page = await self._connection.get_json("/v1/customers", params=params)
            customers = page.get("customers")
            if not isinstance(customers, list) or not customers:
                return
            fresh = cursor.unseen(customers)
            for customer in fresh:
                yield customer
            if not page.get("has_more"):
                return
            if not fresh:
                raise VoucherifyError(
                    f"segment {segment_id}: more than {page_size} customers were created at "
                    f"{starting_after}; the cursor cannot page past them"
                )

    async def aclose(self) -> None:
        """Close the pooled connections; the client cannot be used afterwards."""
        await self._connection.aclose()

    async def __aenter__(self) -> VoucherifyClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _existing_publication(
        self, *, source_id: str, customer: Mapping[str, Any]
    ) -> Publication:
        listing = await self._connection.get_json(
            "/v1/publications", params={"source_id": source_id}
        )
        existing = pick_existing(listing.get("publications"), source_id=source_id)
        if existing is None:
            problem: str | None = "Voucherify lists no publication for it"
        else:
            problem = other_customer(existing, customer)
        if existing is None or problem is not None:
            raise VoucherifyRequestError(
                self._connection.scrub(f"source_id {source_id!r} is already used, but {problem}"),
                http_status=400,
                key="duplicate_source_id",
            )
        return await self._publication(existing, source_id=source_id, reused=True)

    async def _publication(
        self, body: Mapping[str, Any], *, source_id: str, reused: bool = False
    ) -> Publication:
        voucher = embedded_voucher(body)
        if voucher is None:
            # A listing may carry only voucher ids (or a summary): fetch the whole voucher so
            # that a read-back returns what the first publish did.
            reference = voucher_reference(body)
            if reference is None:
                raise VoucherifyError(f"publication {body.get('id')} names no voucher")
            voucher = await self.get_voucher(reference)
        return Publication(
            id=str(body.get("id", "")), source_id=source_id, voucher=voucher, reused=reused
        )
