"""`voucher-relay sandbox`: start the relay (embedded Postgres in its own folder) and both
emulators, walk through a first webhook and a first manual run, say what to open, and stop all
of it on Ctrl-C.

It starts afresh each time unless `--keep`: the emulators keep what they received in memory
only, so a kept database would remember values (`attribute_state`) that a new Braze emulator
never got, and skip them as `unchanged`. With `--keep` the example distributions are reused
(replaced where they differ) and the webhook still gets a new id.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import httpx

from app.config import Settings
from app.db.embedded import EmbeddedPostgres, pid_alive
from app.errors import ConfigError
from app.sandbox import processes, tour
from app.sandbox.processes import Child
from app.sandbox.voucherify.seed import SEGMENT_ID

OPS_TOKEN = "sandbox-token"
WEBHOOK_SECRET = "sandbox-secret"
BRAZE_KEY = "sandbox-braze-key"
APP_ID, APP_TOKEN = "sandbox-app", "sandbox-app-token"
START_SECONDS = 120.0  # a first start initialises Postgres: seconds on a laptop, more on CI


def add_parser(commands: Any) -> None:
    sandbox = commands.add_parser(
        "sandbox",
        help="the relay, both emulators and a first delivery, on this machine (Ctrl-C stops)",
    )
    sandbox.add_argument("--port", type=int, help="the relay's port (default: PORT, 8000)")
    sandbox.add_argument("--braze-port", type=int, default=9000, help="default 9000")
    sandbox.add_argument("--voucherify-port", type=int, default=9001, help="default 9001")
    sandbox.add_argument(
        "--data-dir", type=Path, default=Path(".sandbox"),
        help="its embedded Postgres and logs (default .sandbox; never DATA_DIR's)",
    )  # fmt: skip
    sandbox.add_argument(
        "--keep", action="store_true", help="keep the last sandbox's database instead of a new one"
    )


def run(settings: Settings, args: argparse.Namespace) -> None:
    # Ctrl-C is how the sandbox stops: honour it also when started in the background of a
    # script (which starts a job with SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    port = args.port if args.port is not None else settings.port
    data_dir: Path = args.data_dir
    relay_url = f"http://127.0.0.1:{port}"
    braze_url = f"http://127.0.0.1:{args.braze_port}"
    voucherify_url = f"http://127.0.0.1:{args.voucherify_port}"
    _prepare(data_dir, keep=args.keep)
    env = _child_env(data_dir, port=port, braze_url=braze_url, voucherify_url=voucherify_url)
    logs = data_dir / "logs"
    children: list[Child] = []
    try:
        children.append(processes.start(
            "relay", ["serve"], env=env, log=logs / "relay.log"
        ))  # fmt: skip
        children.append(processes.start(
            "Braze emulator",
            ["braze-emulator", "--host", "127.0.0.1", "--port", str(args.braze_port)],
            env=env, log=logs / "braze-emulator.log",
        ))  # fmt: skip
        children.append(processes.start(
            "Voucherify emulator",
            ["voucherify-emulator", "--host", "127.0.0.1", "--port", str(args.voucherify_port)],
            env=env, log=logs / "voucherify-emulator.log",
        ))  # fmt: skip
        print(f"voucher-relay sandbox in {data_dir}/ ("
              + ("the last one's data kept" if args.keep else "a new one; --keep keeps the last")
              + ")", flush=True)  # fmt: skip
        for child, url, check in zip(
            children, (relay_url, braze_url, voucherify_url),
            ("/readyz", "/_emulator/faults", "/_emulator/faults"), strict=True,
        ):  # fmt: skip
            processes.wait_answering(child, url + check, timeout=START_SECONDS)
            print(f"  {child.name:<20} {url:<24} pid {child.pid:<7} log {child.log}", flush=True)
        _walk_through(relay_url, braze_url)
        _guide(relay_url, braze_url, voucherify_url)
        _wait_for_a_signal(children)
    except (processes.ChildFailed, tour.TourFailed) as exc:
        raise ConfigError(f"sandbox: {exc}") from None
    finally:
        _stop_all(children, data_dir)


def _prepare(data_dir: Path, *, keep: bool) -> None:
    """A new sandbox: empty the folder, after stopping a Postgres left in it by a sandbox that
    was killed (one still running for another sandbox stops us instead)."""
    server = EmbeddedPostgres(data_dir)
    pid = server.running_pid()
    owner = data_dir / "postgres.owner"
    if pid is not None:
        owner_pid = int(owner.read_text()) if owner.exists() else None
        if owner_pid is not None and pid_alive(owner_pid):
            raise ConfigError(
                f"--data-dir: another sandbox (pid {owner_pid}) uses {data_dir}: stop it first"
            )
        processes.stop_pid(pid)
    if not keep and data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)


def _child_env(data_dir: Path, *, port: int, braze_url: str, voucherify_url: str) -> dict[str, str]:
    """Every setting the sandbox depends on, set: the environment wins over a `.env` file, so a
    `.env` written for production (a DATABASE_URL, real keys) is not used here."""
    # Not blanked but removed: prometheus_client takes any PROMETHEUS_MULTIPROC_DIR it finds in
    # the environment, an empty one too (then it writes its files in the working directory).
    env = {k: v for k, v in os.environ.items() if k.upper() != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        DATABASE_URL="", DATA_DIR=str(data_dir.resolve()), HOST="127.0.0.1", PORT=str(port),
        OPS_API_TOKENS=f"sandbox:write:{OPS_TOKEN}", VOUCHERIFY_WEBHOOK_SECRET=WEBHOOK_SECRET,
        BRAZE_REST_URL=braze_url, BRAZE_API_KEY=BRAZE_KEY, VOUCHERIFY_API_URL=voucherify_url,
        VOUCHERIFY_APP_ID=APP_ID, VOUCHERIFY_APP_TOKEN=APP_TOKEN, METRICS_TOKEN="",
        METRICS_ENABLED="true", LOG_LEVEL="info",
    )  # fmt: skip
    return env


def _walk_through(relay_url: str, braze_url: str) -> None:
    headers = {"Authorization": f"Bearer {OPS_TOKEN}"}
    with (
        httpx.Client(base_url=f"{relay_url}/api/v1", headers=headers, trust_env=False) as api,
        httpx.Client(base_url=relay_url, trust_env=False) as relay,
        httpx.Client(base_url=braze_url, trust_env=False) as braze,
    ):
        done = tour.upsert_distributions(api)
        print("\n1. distributions from examples/distributions/: "
              + ", ".join(f"{name} {what}" for name, what in done))  # fmt: skip

        body, voucherify_event = tour.fresh_sample_webhook()
        answer = tour.send_webhook(relay, body, secret=WEBHOOK_SECRET)
        print(
            f"2. the signed sample webhook (customer.segment.entered, {voucherify_event}): "
            f"{answer['status']} {answer['outcome']}, {answer['deliveries']} delivery"
        )
        [delivery] = tour.wait_delivered(api, answer["event_id"])
        print(f"   delivery {delivery['id']}: {delivery['status']}")
        _print_profiles(braze, ["braze-usr-10042"])

        run = tour.run_to_segment(api, tour.distribution_id(api, "welcome-run"), SEGMENT_ID)
        progress = run["progress"]
        skipped = progress["skipped"]
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(skipped["reasons"].items()))
        print(
            f"3. manual run {run['id']} of welcome-run to {SEGMENT_ID}: {run['status']}, "
            f"{progress['delivered']} delivered, {skipped['total']} skipped ({reasons})"
        )
        _print_profiles(braze, ["braze-usr-10042", "braze-usr-10043"])
        if "unchanged" in skipped["reasons"]:
            print("   unchanged: an earlier sandbox sent that value (its database was kept); this "
                  "Braze emulator started empty")  # fmt: skip


def _print_profiles(braze: httpx.Client, users: list[str]) -> None:
    profiles = braze.get("/_emulator/profiles").json()
    for user in users:
        code = profiles.get(f"external_id:{user}", {}).get("welcome_code", "(none received)")
        print(f"   Braze emulator: {user} welcome_code = {code}")


def _guide(relay_url: str, braze_url: str, voucherify_url: str) -> None:
    print(
        f"""
Open:
  {relay_url}/docs                     the API (Authorize: {OPS_TOKEN})
  {braze_url}/_emulator/profiles       what Braze holds
  {voucherify_url}/_emulator/publications   the codes Voucherify handed out
Try, in another terminal:
  curl -s {relay_url}/api/v1/deliveries -H 'Authorization: Bearer {OPS_TOKEN}'
  curl -s {relay_url}/readyz
More: docs/sandbox.md (seeding customers, injecting faults into either emulator).
Ctrl-C stops the relay, its Postgres and both emulators.""",
        flush=True,
    )


def _wait_for_a_signal(children: list[Child]) -> None:
    """Until Ctrl-C or SIGTERM (they raise out of here: cli.main handles both), or a child
    stops by itself (then the others are stopped too and the sandbox says so)."""
    while all(child.process.poll() is None for child in children):
        time.sleep(0.5)
    gone = next(c for c in children if c.process.poll() is not None)
    raise processes.ChildFailed(
        f"the {gone.name} stopped (exit {gone.process.returncode}); the end of "
        f"{gone.log}:\n{gone.last_lines()}"
    )


def _stop_all(children: list[Child], data_dir: Path) -> None:
    """Each child by its pid, the relay first (it stops its worker, then its Postgres); then
    the Postgres itself, should the relay have left it running."""
    # A second Ctrl-C while stopping must not leave the rest running.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for child in children:
            processes.stop(child)
        pid = EmbeddedPostgres(data_dir).running_pid()
        if pid is not None:
            processes.stop_pid(pid)
        if children:
            print("sandbox stopped: relay, Postgres and emulators", flush=True)
    finally:
        signal.signal(signal.SIGINT, previous)
