"""The Voucherify emulator's customers and segments, and `GET /v1/customers` with the real
paging rules (reference §2.4): `limit` 1..100 (default 10), `page` 1..99, the `order` values,
the `starting_after` cursor, `total` and `has_more`. Not locked: `EmulatorState` holds the lock.
"""

from __future__ import annotations

import itertools
from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from app.sandbox.voucherify.objects import ApiError, Customer, aware, from_unix, not_found

ORDERS = ("created_at", "-created_at", "updated_at", "-updated_at", "source_id", "-source_id")
# Not documented: Voucherify's default order. Newest first is what its dashboard shows.
DEFAULT_ORDER = "-created_at"
DEFAULT_LIMIT, MAX_LIMIT, MAX_PAGE = 10, 100, 99
_MILLISECOND = timedelta(milliseconds=1)


class CustomerBook:
    """Customers by id and source_id, segment memberships, and sorted views for listing."""

    def __init__(self, *, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.clear()

    def clear(self) -> None:
        self.by_id: dict[str, Customer] = {}
        self._by_source_id: dict[str, Customer] = {}
        self.segments: dict[str, set[str]] = {}
        self._sorted: dict[tuple[str | None, str], list[Customer]] = {}
        self._last_created: datetime | None = None
        self._ids = itertools.count(1)

    def add(
        self,
        *,
        source_id: str | None = None,
        id: str | None = None,
        name: str | None = None,
        email: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        created_at: datetime | None = None,
        segments: Iterable[str] = (),
    ) -> Customer:
        """Add a customer. Without `created_at` it is created now, and always after the
        customer created before it, so that creation order is listing order."""
        customer_id = id or f"cust_{next(self._ids):010d}"
        if customer_id in self.by_id or (source_id and source_id in self._by_source_id):
            raise ValueError(f"customer {source_id or customer_id} exists")
        customer = Customer(
            id=customer_id,
            source_id=source_id,
            created_at=aware(created_at) or self._next_created_at(),
            name=name,
            email=email,
            metadata=dict(metadata or {}),
        )
        self.by_id[customer.id] = customer
        if source_id:
            self._by_source_id[source_id] = customer
        for segment_id in segments:
            self.segments.setdefault(segment_id, set()).add(customer.id)
        self._sorted.clear()
        return customer

    def seed(self, *, count: int, segment_id: str | None, source_id_pattern: str) -> list[Customer]:
        """`count` customers, source_id `source_id_pattern.format(n=n)` for n from 1."""
        segments = () if segment_id is None else (segment_id,)
        if segment_id is not None:
            self.segments.setdefault(segment_id, set())
        return [
            self.add(source_id=source_id_pattern.format(n=n), segments=segments)
            for n in range(1, count + 1)
        ]

    def add_to_segment(self, segment_id: str, customers: Iterable[str]) -> None:
        members = self.segments.setdefault(segment_id, set())
        for ref in customers:
            customer = self.find(ref)
            if customer is None:
                raise ValueError(f"no customer {ref}")
            members.add(customer.id)
        self._sorted.clear()

    def find(self, id_or_source_id: str) -> Customer | None:
        return self.by_id.get(id_or_source_id) or self._by_source_id.get(id_or_source_id)

    def upsert(self, fields: Mapping[str, Any]) -> Customer:
        """The customer a publication names: by `id` (which must exist, else 404), or by
        `source_id`, created when new; given name, email and metadata are updated."""
        customer_id, source_id = fields.get("id"), fields.get("source_id")
        if customer_id:
            customer = self.by_id.get(str(customer_id))
            if customer is None:
                raise not_found("customer", str(customer_id))
        else:
            customer = self._by_source_id.get(str(source_id)) or self.add(source_id=str(source_id))
        changed = {k: fields[k] for k in ("name", "email", "metadata") if fields.get(k)}
        if changed:
            customer.name = changed.get("name", customer.name)
            customer.email = changed.get("email", customer.email)
            customer.metadata = {**customer.metadata, **changed.get("metadata", {})}
            customer.updated_at = from_unix(self._clock())
            self._sorted.clear()
        return customer

    def listing(self, query: Mapping[str, str]) -> dict[str, Any]:
        """`GET /v1/customers`: the `starting_after` cursor applies first, then `page`."""
        limit = _int_param(query, "limit", DEFAULT_LIMIT, MAX_LIMIT)
        page = _int_param(query, "page", 1, MAX_PAGE)
        order = query.get("order") or DEFAULT_ORDER
        if order not in ORDERS:
            raise _bad_query(f"order must be one of {', '.join(ORDERS)}")
        segment_id = query.get("segment_id")
        if segment_id is not None and segment_id not in self.segments:
            raise not_found("segment", segment_id)
        members = self._sorted_members(segment_id, order)
        total = len(members)
        if query.get("starting_after"):
            members = _after(members, order, _parse_time(query["starting_after"]))
        start = (page - 1) * limit
        return {
            "object": "list",
            "data_ref": "customers",
            "customers": [c.as_json() for c in members[start : start + limit]],
            "total": total,
            "has_more": start + limit < len(members),
        }

    def _sorted_members(self, segment_id: str | None, order: str) -> list[Customer]:
        # Cached until the next change: a walk through 10,000 customers lists them 100 times.
        cached = self._sorted.get((segment_id, order))
        if cached is None:
            pool = (
                self.by_id.values()
                if segment_id is None
                else [self.by_id[i] for i in self.segments[segment_id]]
            )
            field = order.lstrip("-")
            cached = sorted(pool, key=lambda c: (_order_key(c, field), c.id))
            if order.startswith("-"):
                cached.reverse()
            self._sorted[(segment_id, order)] = cached
        return cached

    def _next_created_at(self) -> datetime:
        now = from_unix(self._clock())
        if self._last_created is not None and now <= self._last_created:
            now = self._last_created + _MILLISECOND
        self._last_created = now
        return now


def _order_key(customer: Customer, field: str) -> Any:
    if field == "source_id":
        return customer.source_id or ""
    if field == "updated_at":
        return customer.updated_at or customer.created_at
    return customer.created_at


def _after(members: list[Customer], order: str, cursor: datetime) -> list[Customer]:
    """The customers past the cursor: later ones when the order ascends by time, earlier ones
    when it descends; for `source_id` orders, those created after it."""
    if order == "created_at":
        return members[bisect_right(members, cursor, key=lambda c: c.created_at) :]
    field = "updated_at" if "updated_at" in order else "created_at"
    if order.startswith("-") and field == order.lstrip("-"):
        return [c for c in members if _order_key(c, field) < cursor]
    return [c for c in members if _order_key(c, field) > cursor]


def _int_param(query: Mapping[str, str], name: str, default: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= high:
        raise _bad_query(f"{name} must be an integer within 1..{high}, not {raw!r}")
    return value


def _parse_time(raw: str) -> datetime:
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise _bad_query(f"starting_after must be a date-time, not {raw!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _bad_query(details: str) -> ApiError:
    # Voucherify's key for bad list parameters is not documented; this one is ours.
    return ApiError(400, "invalid_query_params", "Invalid query params", details)
