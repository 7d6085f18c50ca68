"""The Voucherify objects the emulator keeps, how it renders them as the API does, and its
error answer. Field names follow reference §2.3-2.4 (SimpleVoucher, publication, customer);
values Voucherify does not document (asset ids and URLs, the id format) are ours.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from app.voucherify.segments import format_timestamp

ASSETS_URL = "https://dl.voucherify.io/api/v1/assets"


class ApiError(Exception):
    """An answer in Voucherify's error shape: `{"code", "key", "message", "details", ...}`."""

    def __init__(
        self, status: int, key: str, message: str, details: str | None = None, **extra: str
    ) -> None:
        super().__init__(f"{status} {key}: {message}")
        self.status = status
        self.body: dict[str, Any] = {
            "code": status,
            "key": key,
            "message": message,
            **({"details": details} if details else {}),
            **extra,
        }


def not_found(resource_type: str, resource_id: str) -> ApiError:
    """A 404 as Voucherify answers it for an unknown resource."""
    return ApiError(
        404,
        "not_found",
        "Resource not found",
        f"Cannot find {resource_type} with id {resource_id}",
        resource_id=resource_id,
        resource_type=resource_type,
    )


def timestamp(moment: datetime | None) -> str | None:
    return None if moment is None else format_timestamp(moment)


def aware(moment: datetime | None) -> datetime | None:
    """`moment` with a time zone: UTC when it has none."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def from_unix(seconds: float) -> datetime:
    """A clock reading as a UTC time with Voucherify's millisecond precision."""
    return datetime.fromtimestamp(round(seconds, 3), UTC)


def expand_pattern(pattern: str, number: int) -> str:
    """The code number `number` of a pattern: its run of `#` becomes the zero-padded number
    (`WELCOME-####`, 7 -> `WELCOME-0007`); a pattern without `#` gets the number appended.
    Voucherify fills `#` with random characters; counting keeps tests repeatable."""
    run = re.search(r"#+", pattern)
    if run is None:
        return f"{pattern}{number}"
    digits = str(number).zfill(len(run.group()))
    return pattern[: run.start()] + digits + pattern[run.end() :]


@dataclass
class Customer:
    id: str
    source_id: str | None
    created_at: datetime
    name: str | None = None
    email: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    updated_at: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source_id": self.source_id,
            "name": self.name,
            "email": self.email,
            "metadata": dict(self.metadata),
            "created_at": timestamp(self.created_at),
            "updated_at": timestamp(self.updated_at),
            "object": "customer",
        }


@dataclass
class Campaign:
    """A campaign and its finite pool of codes, published in list order."""

    id: str
    name: str
    codes: list[str]
    voucher_type: str = "DISCOUNT_VOUCHER"
    discount: dict[str, Any] | None = None
    start_date: datetime | None = None
    expiration_date: datetime | None = None
    published: int = 0  # codes[:published] are gone

    @property
    def remaining(self) -> int:
        return len(self.codes) - self.published


@dataclass
class Voucher:
    id: str
    code: str
    campaign: Campaign
    created_at: datetime
    holder_id: str | None = None
    publish_count: int = 0

    def as_json(self) -> dict[str, Any]:
        """The voucher as a SimpleVoucher of the publication answer (reference §2.3)."""
        asset = hashlib.sha256(self.id.encode()).hexdigest()[:32]
        campaign = self.campaign
        return {
            "id": self.id,
            "code": self.code,
            "campaign": campaign.name,
            "campaign_id": campaign.id,
            "category": None,
            "type": campaign.voucher_type,
            "discount": campaign.discount,
            "gift": None,
            "loyalty_card": None,
            "start_date": timestamp(campaign.start_date),
            "expiration_date": timestamp(campaign.expiration_date),
            "active": True,
            "metadata": {},
            "assets": {
                "qr": {"id": f"qr_{asset}", "url": f"{ASSETS_URL}/qr/{asset}"},
                "barcode": {"id": f"bc_{asset}", "url": f"{ASSETS_URL}/barcode/{asset}"},
            },
            "is_referral_code": False,
            "holder_id": self.holder_id,
            "created_at": timestamp(self.created_at),
            "redemption": {"quantity": 1, "redeemed_quantity": 0, "object": "list"},
            "publish": {"object": "list", "count": self.publish_count},
            "object": "voucher",
        }


@dataclass
class Publication:
    id: str
    source_id: str | None
    voucher: Voucher
    customer: Customer
    created_at: datetime
    channel: str = "API"
    metadata: dict[str, Any] = field(default_factory=dict)

    def as_json(self, *, with_voucher: bool = True) -> dict[str, Any]:
        """The publication as `POST /v1/publications` returns it; without `voucher` (only
        `vouchers_id`) when `with_voucher` is False, as some listings do."""
        customer = self.customer
        body: dict[str, Any] = {
            "id": self.id,
            "object": "publication",
            "created_at": timestamp(self.created_at),
            "customer_id": customer.id,
            "tracking_id": customer.source_id,
            "metadata": dict(self.metadata),
            "channel": self.channel,
            "source_id": self.source_id,
            "result": "SUCCESS",
            "customer": {
                "id": customer.id,
                "source_id": customer.source_id,
                "name": customer.name,
                "email": customer.email,
                "metadata": dict(customer.metadata),
                "object": "customer",
            },
            "vouchers_id": [self.voucher.id],
        }
        if with_voucher:
            body["voucher"] = self.voucher.as_json()
        return body

    def summary(self) -> dict[str, Any]:
        """Who got which code, for `GET /_emulator/publications`."""
        return {
            "id": self.id,
            "source_id": self.source_id,
            "code": self.voucher.code,
            "campaign": self.voucher.campaign.name,
            "customer_id": self.customer.id,
            "customer_source_id": self.customer.source_id,
            "created_at": timestamp(self.created_at),
        }
