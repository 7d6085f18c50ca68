"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import URL

from tests.postgres import scratch_database


@pytest.fixture
def database(server_url: URL) -> Iterator[str]:
    """A scratch database of the suite's Postgres, as a plain postgresql:// DATABASE_URL."""
    with scratch_database(server_url, prefix="vr_e2e") as url:
        yield url.set(drivername="postgresql").render_as_string(hide_password=False)
