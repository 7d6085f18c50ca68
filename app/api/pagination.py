"""Keyset pagination shared by every list endpoint: newest first, stable while rows arrive, and
an opaque cursor (the last id seen) that the API hands out and reads back."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Generic, Protocol, TypeVar

from pydantic import BaseModel, Field
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from app.api.params import BIGINT_MAX
from app.errors import VoucherRelayError

T = TypeVar("T")


class Keyed(Protocol):
    """A row of a table whose bigint `id` only grows: what a keyset page walks."""

    @property
    def id(self) -> int: ...


Row = TypeVar("Row", bound=Keyed)


class BadCursorError(VoucherRelayError):
    status_code = 422
    code = "validation_error"


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(str(last_id).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        last_id = int(base64.urlsafe_b64decode(padded.encode()).decode())
    except (ValueError, UnicodeDecodeError):
        last_id = 0
    if not 0 < last_id <= BIGINT_MAX:  # Postgres would refuse a larger one with a 500
        raise BadCursorError("cursor is not one this API returned")
    return last_id


async def page(
    session: AsyncSession, query: Select[Row], key: InstrumentedAttribute[int], *,
    limit: int, cursor: str | None,
) -> tuple[Sequence[Row], str | None]:  # fmt: skip
    """Rows older than the cursor by `key` (the table's id), newest first; ids only grow, so new
    rows never shift a page."""
    if cursor is not None:
        query = query.where(key < decode_cursor(cursor))
    ordered = query.order_by(key.desc()).limit(limit + 1)
    rows = list((await session.execute(ordered)).scalars().all())
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1].id) if more and rows else None


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="pass as ?cursor= for the next (older) page; null on the last page"
    )
