"""Every metric voucher-relay exposes is described in the metrics table of docs/metrics.md."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.metrics import MetricWrapperBase

from app.metrics import registry
from app.metrics.collectors import DatabaseCollector, GateReading, Snapshot

METRICS_PAGE = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text()


def test_every_metric_is_in_the_readme() -> None:
    names = {
        family.name + ("_total" if family.type == "counter" else "")
        for metric in vars(registry).values()
        if isinstance(metric, MetricWrapperBase)
        for family in metric.describe()
    }
    full = Snapshot(True, {"pending": 1}, 1, 1.0, {("dead", ""): 1}, GateReading("open"))
    names |= {family.name for family in DatabaseCollector(full).collect()}
    assert len(names) == 23
    missing = sorted(name for name in names if f"| `{name}` |" not in METRICS_PAGE)
    assert not missing, f"not in the metrics table of docs/metrics.md: {missing}"
