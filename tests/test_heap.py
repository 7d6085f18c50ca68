"""The collector's settings for `serve` and `worker` (app/heap.py): set once start-up is done."""

from __future__ import annotations

import argparse
import gc
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest
import uvloop
from sqlalchemy.engine import URL

from app import cli
from app.config import Settings
from app.heap import GENERATION0_THRESHOLD, settle_heap


@pytest.fixture
def restored_collector() -> Iterator[None]:
    """Starts from CPython's defaults; afterwards, what a test froze goes back to the collector."""
    thresholds = gc.get_threshold()
    gc.unfreeze()
    gc.set_threshold(700)
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def _collector_state() -> tuple[int, int]:
    return gc.get_freeze_count(), gc.get_threshold()[0]


def _settings(database_url: URL) -> Settings:
    plain = database_url.render_as_string(hide_password=False)
    return Settings(_env_file=None, database_url=plain, voucherify_webhook_secret="s")


def _assert_settled_once(seen: list[tuple[int, int]]) -> None:
    assert len(seen) == 1
    frozen, threshold = seen[0]
    assert frozen > 0 and threshold == GENERATION0_THRESHOLD


@pytest.mark.usefixtures("restored_collector")
def test_settling_freezes_the_start_up_heap_and_raises_the_young_threshold() -> None:
    live = [object() for _ in range(10)] + [{"held": n} for n in range(1000)]
    settle_heap()
    frozen, threshold = _collector_state()
    assert frozen >= len(live)  # what start-up built is out of every later collection
    assert threshold == GENERATION0_THRESHOLD
    assert gc.get_threshold()[1:] == (10, 10)  # the older generations keep their defaults


@pytest.mark.usefixtures("restored_collector")
def test_serve_settles_the_heap_after_building_the_app_and_before_serving(
    database_url: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[int, int]] = []
    monkeypatch.setattr(cli, "serve_http", lambda *a, **k: seen.append(_collector_state()))
    args = argparse.Namespace(host="127.0.0.1", port=0, migrate=False, no_worker=True)
    cli._serve(_settings(database_url), args)
    _assert_settled_once(seen)


@pytest.mark.usefixtures("restored_collector")
def test_the_worker_settles_the_heap_before_its_loop_starts(
    database_url: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[int, int]] = []

    def run(work: Coroutine[Any, Any, None]) -> None:
        work.close()  # not started: only the moment matters here
        seen.append(_collector_state())

    monkeypatch.setattr(uvloop, "run", run)
    cli._worker(_settings(database_url), argparse.Namespace(metrics_port=None, wake_fd=None))
    _assert_settled_once(seen)
