"""Walking a segment's customers with the `starting_after` cursor, without HTTP.

Why a cursor from the first page, not page numbers: `page` stops at 99 (9,900 customers at 100
a page, reference §2.4), and page offsets shift when customers join during the walk; a
`created_at` cursor with `order=created_at` does neither, and newcomers simply come last.

Whether `starting_after` is exclusive is not documented, and bulk imports can give many
customers the same creation time. So each request starts 1 ms before the last creation time
seen, and the customers already yielded are skipped: ties at a page boundary are neither lost
nor repeated, whichever way Voucherify compares.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from app.voucherify.errors import VoucherifyError


class MemberCursor:
    """Where a walk through a segment stands: the last creation time yielded and the ids
    yielded at exactly that time."""

    def __init__(self) -> None:
        self.last_at: datetime | None = None
        self._ids_at_last: set[str] = set()

    def checkpoint(self) -> dict[str, Any]:
        """The cursor as JSON, to resume a walk later (`from_checkpoint`)."""
        last_at = None if self.last_at is None else self.last_at.isoformat()
        return {"last_at": last_at, "ids_at_last": sorted(self._ids_at_last)}

    @classmethod
    def from_checkpoint(cls, saved: dict[str, Any]) -> MemberCursor:
        """A cursor where `checkpoint()` left one: the walk continues after those customers."""
        cursor = cls()
        if saved.get("last_at"):
            cursor.last_at = datetime.fromisoformat(saved["last_at"])
            cursor._ids_at_last = set(saved.get("ids_at_last") or ())
        return cursor

    def starting_after(self) -> str | None:
        """The `starting_after` of the next request; None for the first."""
        if self.last_at is None:
            return None
        return format_timestamp(self.last_at - timedelta(milliseconds=1))

    def unseen(self, customers: list[Any]) -> list[dict[str, Any]]:
        """The customers of a page (oldest first) not yielded before, and move past them.

        Raises VoucherifyError for a customer without id or readable created_at.
        """
        fresh: list[dict[str, Any]] = []
        for customer in customers:
            created_at = created_at_of(customer)
            if self.last_at is not None and (
                created_at < self.last_at
                or (created_at == self.last_at and customer["id"] in self._ids_at_last)
            ):
                continue  # the overlap with the previous page
            if self.last_at is None or created_at > self.last_at:
                self.last_at, self._ids_at_last = created_at, set()
            self._ids_at_last.add(customer["id"])
            fresh.append(customer)
        return fresh


def created_at_of(customer: object) -> datetime:
    """A customer's creation time, aware (UTC when Voucherify gave no offset)."""
    if isinstance(customer, dict) and isinstance(customer.get("id"), str):
        try:
            created_at = datetime.fromisoformat(str(customer.get("created_at")))
        except ValueError:
            pass
        else:
            return created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC)
    raise VoucherifyError(f"a segment member without id or created_at: {customer!r:.200}")


def format_timestamp(moment: datetime) -> str:
    """A time in Voucherify's own form, e.g. `2026-01-15T12:00:00.123Z`."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
