"""The bodies of the Voucherify emulator's seeding endpoints (`POST /_emulator/...`), each
applying itself to the state through its Python API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.sandbox.voucherify.objects import Campaign
from app.sandbox.voucherify.state import EmulatorState


class CustomerSeed(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source_id: str | None = None
    id: str | None = None
    name: str | None = None
    email: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None
    segments: list[str] = Field(default_factory=list)


class GeneratedCustomers(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int = Field(ge=1, le=1_000_000)
    source_id_pattern: str = "customer-{n}"
    segment_id: str | None = None


class CustomersSeed(BaseModel):
    """`{"customers": [{"source_id": "u1", "segments": ["seg_1"]}, ...]}` and/or
    `{"generate": {"count": 10050, "segment_id": "seg_big"}}`."""

    model_config = ConfigDict(extra="forbid")

    customers: list[CustomerSeed] = Field(default_factory=list)
    generate: GeneratedCustomers | None = None

    def apply(self, state: EmulatorState) -> int:
        """Add the customers; how many were added."""
        for customer in self.customers:
            state.add_customer(**customer.model_dump())
        generated = self.generate
        if generated is not None:
            state.seed_customers(**generated.model_dump())
        return len(self.customers) + (generated.count if generated else 0)


class SegmentSeed(BaseModel):
    """`{"id": "seg_1", "customers": ["cust_..." or a source_id, ...]}`."""

    model_config = ConfigDict(extra="forbid")

    id: str
    customers: list[str] = Field(default_factory=list)

    def apply(self, state: EmulatorState) -> None:
        state.add_to_segment(self.id, self.customers)


class CampaignSeed(BaseModel):
    """`{"name": "welcome", "codes": ["A", "B"]}` or `{"name": "welcome", "count": 500,
    "pattern": "WELCOME-#####", "expiration_date": "2026-12-31T23:59:59Z"}`."""

    model_config = ConfigDict(extra="forbid")

    name: str
    id: str | None = None
    codes: list[str] | None = None
    count: int | None = Field(default=None, ge=0, le=1_000_000)
    pattern: str = "CODE-######"
    voucher_type: str = "DISCOUNT_VOUCHER"
    discount: dict[str, Any] | None = None
    start_date: datetime | None = None
    expiration_date: datetime | None = None

    @model_validator(mode="after")
    def _one_pool(self) -> CampaignSeed:
        if (self.codes is None) == (self.count is None):
            raise ValueError("give either codes or count")
        return self

    def apply(self, state: EmulatorState) -> Campaign:
        return state.add_campaign(**self.model_dump())
