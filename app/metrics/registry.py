"""The per-process metrics, and the calls that count on the hot paths.

Counting is an in-memory increment (a dict lookup and an uncontended lock; in multiprocess mode
also a write to a memory-mapped file): no I/O, no database. What Postgres holds (queue depth,
deliveries by status, the Braze gate) is read at scrape time by `collectors.py` instead, so
that every process reports the same truth.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from app import __version__
from app.metrics.labels import UNVERIFIED, status_class

WEBHOOKS = Counter(
    "voucher_relay_webhooks_received",
    "Webhooks answered, by event type, outcome and HTTP status.",
    ["event_type", "outcome", "status"],
)
BRAZE_REQUESTS = Counter(
    "voucher_relay_braze_requests",
    "Braze /users/track requests, by status class and what the answer meant.",
    ["status_class", "kind"],
)
BRAZE_DURATION = Histogram(
    "voucher_relay_braze_request_duration_seconds",
    "Time from sending a /users/track request to its answer (or failure).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
GATE_WAITS = Counter(
    "voucher_relay_braze_gate_waits",
    "Times a worker lane waited at the Braze gate before sending, by reason.",
    ["reason"],
)
GATE_WAIT_SECONDS = Counter(
    "voucher_relay_braze_gate_wait_seconds",
    "Seconds worker lanes spent waiting at the Braze gate, by reason.",
    ["reason"],
)
DATA_POINTS_SAVED = Counter(
    "voucher_relay_data_points_saved",
    "Attributes not sent because Braze already had the value (Braze bills each one sent).",
)
VOUCHERIFY_REQUESTS = Counter(
    "voucher_relay_voucherify_requests",
    "Voucherify API requests, by resource and status class.",
    ["endpoint", "status_class"],
)
PUBLICATIONS = Counter(
    "voucher_relay_voucherify_publications",
    "Codes published from Voucherify campaigns, by result.",
    ["result"],
)
DELIVERIES_SETTLED = Counter(
    "voucher_relay_deliveries_settled",
    "Deliveries a worker settled (delivered, skipped, failed, dead), by outcome and skip reason.",
    ["outcome", "skip_reason"],
)
WORKER_STATEMENT_SECONDS = Histogram(
    "voucher_relay_worker_statement_seconds",
    "Time the worker's queue statements take (claims, reaping expired leases, known values).",
    ["statement"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0),
)
WORKER_STATEMENT_TIMEOUTS = Counter(
    "voucher_relay_worker_statement_timeouts",
    "Worker statements canceled for running past WORKER_STATEMENT_TIMEOUT_SECONDS.",
    ["statement"],
)
DELIVERY_LATENCY = Histogram(
    "voucher_relay_delivery_latency_seconds",
    "Time from a delivery's creation (the webhook stored, the run paged) to Braze accepting it.",
    ["trigger"],
    buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0),
)
REQUEST_BODIES_REFUSED = Counter(
    "voucher_relay_request_bodies_refused",
    "Request bodies refused before or while being read, by reason (app/api/request_body.py).",
    ["reason"],
)
PROCESSES = Gauge(
    "voucher_relay_processes",
    "Running API servers and delivery workers, by role and version.",
    ["role", "version"],
    multiprocess_mode="livesum",
)

# Label children looked up once: `labels()` costs more than the increment itself.
_webhook_children: dict[tuple[str, str, int], Counter] = {}


def count_webhook(event_type: str, outcome: str, status: int) -> None:
    """One answered webhook. `event_type` must be a label value (see `labels.py`)."""
    key = (event_type, outcome, status)
    child = _webhook_children.get(key)
    if child is None:
        child = _webhook_children[key] = WEBHOOKS.labels(event_type, outcome, str(status))
    child.inc()


_settled_children: dict[tuple[str, str], Counter] = {}


def count_settled(outcome: str, skip_reason: str, deliveries: int) -> None:
    """`deliveries` settled with this outcome: one call per outcome of a batch, not per delivery.
    `skip_reason` is empty unless the outcome is `skipped`."""
    key = (outcome, skip_reason)
    child = _settled_children.get(key)
    if child is None:
        child = _settled_children[key] = DELIVERIES_SETTLED.labels(outcome, skip_reason)
    child.inc(deliveries)


# Exported at 0 from the start: Prometheus' increase() sees no rise in a series whose first
# sample is already 1, so an alert on the first dead delivery needs the series before it.
for _outcome in ("delivered", "failed", "dead"):
    count_settled(_outcome, "", 0)


def count_rejected_webhook(status: int) -> None:
    count_webhook(UNVERIFIED, "rejected", status)


def observe_braze_request(
    *, status_code: int | None, error: BaseException | None, kind: str, seconds: float
) -> None:
    BRAZE_REQUESTS.labels(status_class(status_code, error), kind).inc()
    BRAZE_DURATION.observe(seconds)


def observe_gate_wait(reason: str, seconds: float) -> None:
    GATE_WAITS.labels(reason).inc()
    GATE_WAIT_SECONDS.labels(reason).inc(seconds)


def count_voucherify_request(
    endpoint: str, status_code: int | None, error: BaseException | None = None
) -> None:
    VOUCHERIFY_REQUESTS.labels(endpoint, status_class(status_code, error)).inc()


def process_running(role: str) -> Gauge:
    """The gauge child of one role: `inc()` at start, `dec()` at stop."""
    return PROCESSES.labels(role, __version__)


_statement_children: dict[str, Histogram] = {}


def observe_statement(statement: str, seconds: float) -> None:
    child = _statement_children.get(statement)
    if child is None:
        child = _statement_children[statement] = WORKER_STATEMENT_SECONDS.labels(statement)
    child.observe(seconds)


def count_statement_timeout(statement: str) -> None:
    WORKER_STATEMENT_TIMEOUTS.labels(statement).inc()


_latency_children: dict[str, Histogram] = {}


def observe_delivery_latency(trigger: str, seconds: float) -> None:
    """Once per delivered delivery (75 per request): the label child is looked up once."""
    child = _latency_children.get(trigger)
    if child is None:
        child = _latency_children[trigger] = DELIVERY_LATENCY.labels(trigger)
    child.observe(seconds)
