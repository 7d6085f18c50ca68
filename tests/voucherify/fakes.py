"""Shared test doubles for the Voucherify tests: a clock that moves only when slept on, and
Voucherify objects shaped as the reference (§2.3) describes them."""

from __future__ import annotations

import asyncio
from typing import Any


class FakeClock:
    """Unix seconds that move only when `sleep` is awaited; `sleeps` lists every wait asked."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)  # still a suspension point: other tasks run meanwhile


APP_ID, APP_TOKEN = "emulator-app", "emulator-token"


def simple_voucher(code: str, **fields: Any) -> dict[str, Any]:
    """A SimpleVoucher as `POST /v1/publications` returns it."""
    return {
        "id": f"v_{code}",
        "code": code,
        "campaign": "welcome",
        "campaign_id": "camp_welcome",
        "type": "DISCOUNT_VOUCHER",
        "start_date": None,
        "expiration_date": "2026-12-31T23:59:59.000Z",
        "active": True,
        "assets": {
            "qr": {"id": "qr_1", "url": "https://dl.voucherify.io/api/v1/assets/qr/1"},
            "barcode": {"id": "bc_1", "url": "https://dl.voucherify.io/api/v1/assets/barcode/1"},
        },
        "holder_id": "cust_1",
        "object": "voucher",
        **fields,
    }


def publication(code: str, *, source_id: str = "src-1", **fields: Any) -> dict[str, Any]:
    """A publication answer carrying one voucher."""
    return {
        "id": f"pub_{code}",
        "object": "publication",
        "created_at": "2026-01-15T12:00:00.000Z",
        "customer_id": "cust_1",
        "tracking_id": "braze-usr-1",
        "metadata": {},
        "channel": "API",
        "source_id": source_id,
        "result": "SUCCESS",
        "customer": {"id": "cust_1", "source_id": "braze-usr-1", "object": "customer"},
        "vouchers_id": [f"v_{code}"],
        "voucher": simple_voucher(code),
        **fields,
    }


def error(status: int, key: str, message: str = "", **fields: Any) -> dict[str, Any]:
    """A Voucherify error body."""
    return {"code": status, "key": key, "message": message or key, **fields}
