"""What the Voucherify emulator knows (customers, segments, campaigns and their codes,
publications) and how it answers the API, without HTTP. Errors are raised as `ApiError`.

Seed it from Python (`add_customer`, `seed_customers`, `add_to_segment`, `add_campaign`) or
over HTTP (`/_emulator/...`, see `emulator.py`).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, Literal

from app.sandbox.voucherify.customers import CustomerBook
from app.sandbox.voucherify.faults import Faults, RateWindow
from app.sandbox.voucherify.objects import (
    ApiError,
    Campaign,
    Customer,
    Publication,
    Voucher,
    aware,
    expand_pattern,
    from_unix,
    not_found,
    timestamp,
)

DuplicateSourceId = Literal["error", "return_original"]
PublicationListing = Literal["voucher", "vouchers_id"]
DEFAULT_DISCOUNT: Mapping[str, Any] = {"type": "PERCENT", "percent_off": 10}


class EmulatorState:
    """The emulator's data, settings, rate window, faults and request log.

    `duplicate_source_id`: a repeated publication source_id answers 400 `duplicate_source_id`
    ("error", as S11 documents) or the original publication ("return_original", as S12 says).
    `publication_listing`: whether `GET /v1/publications` items carry the `voucher` or only
    `vouchers_id`. Both may be changed at any time.
    """

    def __init__(
        self,
        *,
        app_id: str,
        app_token: str,
        requests_per_minute: int | None = None,
        rate_window_seconds: float = 60.0,
        duplicate_source_id: DuplicateSourceId = "error",
        publication_listing: PublicationListing = "voucher",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app_id = app_id
        self.app_token = app_token
        self.duplicate_source_id: DuplicateSourceId = duplicate_source_id
        self.publication_listing: PublicationListing = publication_listing
        self.clock = clock
        self.faults = Faults(clock=clock)
        self.rate = RateWindow(
            limit=requests_per_minute, window_seconds=rate_window_seconds, clock=clock
        )
        self.customers = CustomerBook(clock=clock)
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        """Forget all data, the request log, the rate window and every fault."""
        with self._lock:
            self.customers.clear()
            self.campaigns: dict[str, Campaign] = {}
            self.vouchers: dict[str, Voucher] = {}  # by code
            self.publications: list[Publication] = []
            self._by_source_id: dict[str, Publication] = {}
            self.requests.clear()
            self._ids = itertools.count(1)
        self.rate.reset()
        self.faults.clear()

    # Seeding --------------------------------------------------------------------------------

    def add_customer(self, **fields: Any) -> Customer:
        """Add one customer (`source_id`, `id`, `name`, `email`, `metadata`, `created_at`,
        `segments`); see `CustomerBook.add`."""
        with self._lock:
            return self.customers.add(**fields)

    def seed_customers(
        self,
        *,
        count: int,
        segment_id: str | None = None,
        source_id_pattern: str = "customer-{n}",
    ) -> list[Customer]:
        """Add `count` customers (source_id from the pattern, n from 1), one millisecond apart,
        optionally all in `segment_id`. Fast enough for tens of thousands."""
        with self._lock:
            return self.customers.seed(
                count=count, segment_id=segment_id, source_id_pattern=source_id_pattern
            )

    def add_to_segment(self, segment_id: str, customers: Iterable[str] = ()) -> None:
        """Create the segment if needed and add these customers (ids or source_ids)."""
        with self._lock:
            self.customers.add_to_segment(segment_id, customers)

    def add_campaign(
        self,
        *,
        name: str,
        id: str | None = None,
        codes: Iterable[str] | None = None,
        count: int | None = None,
        pattern: str = f"CODE-{'#' * 6}",
        voucher_type: str = "DISCOUNT_VOUCHER",
        discount: Mapping[str, Any] | None = None,
        start_date: datetime | None = None,
        expiration_date: datetime | None = None,
    ) -> Campaign:
        """Add a campaign whose pool is `codes`, or `count` codes made from `pattern`."""
        if (codes is None) == (count is None):
            raise ValueError("give either codes or count")
        pool = (
            list(codes)
            if codes is not None
            else [expand_pattern(pattern, n + 1) for n in range(count or 0)]
        )
        with self._lock:
            if len(set(pool)) != len(pool) or any(code in self.vouchers for code in pool):
                raise ValueError("codes must be unique across campaigns")
            campaign = Campaign(
                id=id or self._new_id("camp"),
                name=name,
                codes=pool,
                voucher_type=voucher_type,
                discount=_discount(discount, voucher_type=voucher_type),
                start_date=aware(start_date),
                expiration_date=aware(expiration_date),
            )
            self.campaigns[campaign.id] = campaign
            created_at = from_unix(self.clock())
            for code in pool:
                self.vouchers[code] = Voucher(self._new_id("v"), code, campaign, created_at)
            return campaign

    # The API ----------------------------------------------------------------------------------

    def publish(self, body: object) -> dict[str, Any]:
        """`POST /v1/publications`: publish the next unpublished code of the campaign."""
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_payload", "Invalid payload", "expected a JSON object")
        campaign_ref = body.get("campaign")
        if isinstance(campaign_ref, dict):
            campaign_ref = campaign_ref.get("name") or campaign_ref.get("id")
        if not campaign_ref:
            # The emulator publishes from campaigns only; `voucher` asks for a specific code.
            raise ApiError(400, "missing_vouchers", "Either Campaign or Voucher is required")
        customer_in = body.get("customer")
        if not isinstance(customer_in, dict) or not (
            customer_in.get("id") or customer_in.get("source_id")
        ):
            raise ApiError(
                400, "invalid_publish_params", "Invalid publish params", "customer is required"
            )
        source_id = body.get("source_id")
        with self._lock:
            if isinstance(source_id, str) and source_id in self._by_source_id:
                original = self._by_source_id[source_id]
                if self.duplicate_source_id == "return_original":
                    return original.as_json()
                raise ApiError(
                    400,
                    "duplicate_source_id",
                    "Duplicated source_id",
                    f"Publication with source_id {source_id} already exists",
                )
            campaign = self._campaign(str(campaign_ref))
            customer = self.customers.upsert(customer_in)
            if campaign.remaining == 0:
                raise ApiError(
                    400,
                    "no_voucher_suitable_for_publication",
                    "Couldn't find any voucher suitable for publication.",
                )
            voucher = self.vouchers[campaign.codes[campaign.published]]
            campaign.published += 1
            voucher.holder_id = customer.id
            voucher.publish_count += 1
            metadata = body.get("metadata")
            publication = Publication(
                id=self._new_id("pub"),
                source_id=source_id if isinstance(source_id, str) else None,
                voucher=voucher,
                customer=customer,
                created_at=from_unix(self.clock()),
                channel=str(body.get("channel") or "API"),
                metadata=dict(metadata) if isinstance(metadata, dict) else {},
            )
            self.publications.append(publication)
            if publication.source_id is not None:
                self._by_source_id[publication.source_id] = publication
            return publication.as_json()

    def list_publications(self, *, source_id: str | None, customer: str | None) -> dict[str, Any]:
        """`GET /v1/publications?source_id=&customer=`: matching publications, oldest first."""
        with self._lock:
            found = [
                p
                for p in self.publications
                if (source_id is None or p.source_id == source_id)
                and (customer is None or customer in (p.customer.id, p.customer.source_id))
            ]
            with_voucher = self.publication_listing == "voucher"
            items = [p.as_json(with_voucher=with_voucher) for p in found]
        return {
            "object": "list",
            "data_ref": "publications",
            "publications": items,
            "total": len(items),
        }

    def get_voucher(self, code_or_id: str) -> dict[str, Any]:
        with self._lock:
            voucher = self.vouchers.get(code_or_id) or next(
                (v for v in self.vouchers.values() if v.id == code_or_id), None
            )
            if voucher is None:
                raise not_found("voucher", code_or_id)
            return voucher.as_json()

    def get_customer(self, id_or_source_id: str) -> dict[str, Any]:
        with self._lock:
            customer = self.customers.find(id_or_source_id)
            if customer is None:
                raise not_found("customer", id_or_source_id)
            return customer.as_json()

    def list_customers(self, query: Mapping[str, str]) -> dict[str, Any]:
        """`GET /v1/customers` with its paging rules; see `CustomerBook.listing`."""
        with self._lock:
            return self.customers.listing(query)

    # Inspection -------------------------------------------------------------------------------

    def record(self, *, method: str, path: str, query: str, status: int, fault: str | None) -> None:
        entry = {
            "at": timestamp(from_unix(self.clock())),
            "method": method,
            "path": path,
            "query": query,
            "status": status,
            "fault": fault,
        }
        with self._lock:
            self.requests.append(entry)

    def requests_snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(entry) for entry in self.requests]

    def publications_snapshot(self) -> list[dict[str, Any]]:
        """Who got which code, in publication order."""
        with self._lock:
            return [p.summary() for p in self.publications]

    def _campaign(self, name_or_id: str) -> Campaign:
        campaign = self.campaigns.get(name_or_id) or next(
            (c for c in self.campaigns.values() if c.name == name_or_id), None
        )
        if campaign is None:
            raise not_found("campaign", name_or_id)
        return campaign

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):010d}"


def _discount(given: Mapping[str, Any] | None, *, voucher_type: str) -> dict[str, Any] | None:
    if given is not None:
        return dict(given)
    return dict(DEFAULT_DISCOUNT) if voucher_type == "DISCOUNT_VOUCHER" else None
