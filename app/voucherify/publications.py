"""Reading Voucherify publications: what `POST /v1/publications` and the publication list
return, without HTTP (the client fetches what these say is missing)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The fields of a SimpleVoucher that distributions map; a voucher without them is a summary.
_FULL_VOUCHER_KEYS = ("code", "expiration_date")


@dataclass(frozen=True)
class Publication:
    """One code published to one customer. `voucher` is Voucherify's voucher object as it
    returned it (code, expiration_date, assets, campaign, ...); `reused` is True when the
    publication already existed (`duplicate_source_id`) and was read back."""

    id: str
    source_id: str
    voucher: dict[str, Any]
    reused: bool = False

    @property
    def code(self) -> str:
        return str(self.voucher["code"])


def embedded_voucher(publication: Mapping[str, Any]) -> dict[str, Any] | None:
    """The full voucher a publication carries (`voucher`, or the first of `vouchers`), or None
    when it carries only ids (`vouchers_id`) or a summary without the fields we map."""
    voucher = publication.get("voucher")
    if not isinstance(voucher, dict):
        vouchers = publication.get("vouchers")
        voucher = vouchers[0] if isinstance(vouchers, list) and vouchers else None
    if isinstance(voucher, dict) and all(key in voucher for key in _FULL_VOUCHER_KEYS):
        return voucher
    return None


def voucher_reference(publication: Mapping[str, Any]) -> str | None:
    """The id or code to fetch the publication's voucher by, or None when it names none."""
    ids = publication.get("vouchers_id")
    if isinstance(ids, list) and ids and isinstance(ids[0], str):
        return ids[0]
    for key in ("voucher", "vouchers"):
        value = publication.get(key)
        first = value[0] if isinstance(value, list) and value else value
        if isinstance(first, dict):
            for field in ("id", "code"):
                if isinstance(first.get(field), str):
                    return str(first[field])
        if isinstance(first, str):
            return first
    return None


def pick_existing(publications: object, *, source_id: str) -> Mapping[str, Any] | None:
    """The successful publication made with `source_id` in a listing, or None.

    Items naming another source_id are skipped, in case the filter was not applied.
    """
    if not isinstance(publications, list):
        return None
    for item in publications:
        if not isinstance(item, dict):
            continue
        if item.get("source_id", source_id) != source_id:
            continue
        if item.get("result", "SUCCESS") == "SUCCESS":
            return item
    return None


def other_customer(publication: Mapping[str, Any], customer: Mapping[str, Any]) -> str | None:
    """What shows that `publication` went to another customer than `customer`, or None.

    Our source_ids are derived from the customer, so a mismatch means a key was reused by
    mistake; handing that code out would give one customer's code to another.
    """
    published_to = publication.get("customer")
    published_to = published_to if isinstance(published_to, dict) else {}
    pairs = (
        (customer.get("id"), publication.get("customer_id") or published_to.get("id")),
        (
            customer.get("source_id"),
            publication.get("tracking_id") or published_to.get("source_id"),
        ),
    )
    for ours, theirs in pairs:
        if ours and theirs and ours != theirs:
            return f"it was published to customer {theirs!r}, not {ours!r}"
    return None
