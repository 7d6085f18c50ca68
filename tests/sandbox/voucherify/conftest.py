"""Shared by the emulator tests: an HTTP client on the `app` fixture each test module defines."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from tests.voucherify.fakes import APP_ID, APP_TOKEN

AUTH = {"X-App-Id": APP_ID, "X-App-Token": APP_TOKEN}


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://voucherify.test", headers=AUTH
    ) as client:
        yield client
