"""make fuzz: Schemathesis with every check it has (`--checks all`) over every /api/v1 operation
of a served voucher-relay, FUZZ_EXAMPLES (200) generated requests per operation in each phase
(examples, coverage, fuzzing, stateful), on its own embedded Postgres holding a distribution,
a webhook delivered to a Braze emulator (so there is a Braze request), and a run. Exits with
Schemathesis's code; the processes' logs and Schemathesis's reports are kept when it fails
(or with --keep).

`make test` runs the same checks in-process with fewer examples (tests/test_openapi_fuzz.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx

from app.webhooks.signature import sign
from bench.harness import REPO
from bench.soak_cluster import Cluster, Interrupted, raise_on_signals
from tests.factories import distribution_body, sample

TOKEN = "fuzz-ops-token"
BRAZE_KEY = "fuzz-braze-key"
SECRET = "fuzz-webhook-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--examples", type=int, default=int(os.environ.get("FUZZ_EXAMPLES", 200)),
        help="generated requests per operation and phase (default: FUZZ_EXAMPLES or 200)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=os.environ.get("FUZZ_SEED"))
    parser.add_argument("--keep", action="store_true", help="keep the folder with the logs")
    args = parser.parse_args()
    raise_on_signals()
    folder = Path(tempfile.mkdtemp(prefix="vr-fuzz-"))
    cluster = Cluster(folder)
    started = time.monotonic()
    code = 1
    try:
        port = _serve(cluster)
        code = _schemathesis(port, folder, examples=args.examples, seed=args.seed)
        _say_requests_per_operation(folder / "reports", examples=args.examples)
    except Interrupted:
        print("interrupted: stopping every process", file=sys.stderr)
    finally:
        cluster.stop_all()
        minutes = (time.monotonic() - started) / 60
        print(f"make fuzz: exit {code} after {minutes:.1f} minutes")
        if args.keep or code != 0:
            print(f"server log and reports kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return code


def _serve(cluster: Cluster) -> int:
    """An API and a worker process sending to a Braze emulator, on a database with a row of each
    kind the API shows (a replay's id cannot be guessed: none is made)."""
    database = cluster.start_postgres()
    braze = cluster.start_emulator({"BENCH_BRAZE_KEY": BRAZE_KEY})
    env = {
        "DATABASE_URL": database, "VOUCHERIFY_WEBHOOK_SECRET": SECRET,
        "OPS_API_TOKENS": f"fuzz:write:{TOKEN}", "LOG_LEVEL": "warning",
        "BRAZE_REST_URL": braze, "BRAZE_API_KEY": BRAZE_KEY,
    }  # fmt: skip
    port = cluster.start_api("api", env)
    cluster.start_worker("worker", env)
    api = f"http://127.0.0.1:{port}"
    created = httpx.post(f"{api}/api/v1/distributions", json=distribution_body(), headers=AUTH)
    created.raise_for_status()
    raw = json.dumps(sample("customer.segment.entered")).encode()
    headers = {
        "content-type": "application/json",
        "x-voucherify-signature": sign(raw, SECRET.encode()),
    }
    httpx.post(f"{api}/webhooks/voucherify", content=raw, headers=headers).raise_for_status()
    _wait_delivered(f"{api}/api/v1/deliveries/1")
    publishing = distribution_body(name="runs", code_source={"type": "publish", "campaign": "C"})
    runnable = httpx.post(f"{api}/api/v1/distributions", json=publishing, headers=AUTH)
    runnable.raise_for_status()
    run = {"audience": {"source_ids": ["braze-usr-10042"]}}
    httpx.post(
        f"{api}/api/v1/distributions/{runnable.json()['id']}/runs", json=run, headers=AUTH
    ).raise_for_status()
    return port


def _wait_delivered(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while httpx.get(url, headers=AUTH).json()["status"] != "delivered":
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} was not delivered within {timeout} s")
        time.sleep(0.2)


def _schemathesis(port: int, folder: Path, *, examples: int, seed: int | None) -> int:
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file", str(REPO / "schemathesis.toml"), "run",
        f"http://127.0.0.1:{port}/openapi.json", "--checks", "all",
        # A soft delete keeps a distribution readable: see schemathesis.toml.
        "--exclude-checks", "use_after_free",
        "--max-examples", str(examples), "--include-path-regex", "^/api/v1/",
        "--header", f"Authorization: Bearer {TOKEN}", "--workers", "2",
        "--report", "junit,ndjson", "--report-dir", str(folder / "reports"),
    ]  # fmt: skip
    if seed is not None:
        command += ["--seed", str(seed)]
    return subprocess.call(command)


def _say_requests_per_operation(reports: Path, *, examples: int) -> None:
    """Per phase, how many requests the operations got; for fuzzing, which got fewer than
    asked (Schemathesis stops on an operation whose distinct inputs run out: one without
    parameters has a single request)."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for path in reports.glob("*.ndjson"):
        for line in path.read_text().splitlines():
            finished = json.loads(line).get("ScenarioFinished") or {}
            recorder = finished.get("recorder") or {}
            counts[finished.get("phase", "")][recorder.get("label", "")] += len(
                recorder.get("cases") or ()
            )
    for phase, per_operation in sorted(counts.items()):
        if total := sum(per_operation.values()):
            print(f"{phase}: {total} requests over {len(per_operation)} operations")
    short = sorted((n, label) for label, n in counts["fuzzing"].items() if n < examples)
    for n, label in short:
        print(f"fuzzing: {label} got {n} of {examples}")


if __name__ == "__main__":
    sys.exit(main())
