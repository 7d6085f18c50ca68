"""The `voucher-relay` command (also `python -m app`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import shutil
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import FrameType

import uvloop
from pydantic import ValidationError
from pydantic_core import ErrorDetails
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession

from app import __version__
from app.config import Settings, get_settings
from app.db import migrate as migrations
from app.db.schema import code_revisions, judge, read_revision
from app.db.session import create_engine, create_sessionmaker
from app.db.startup import check_reachable, provide_database
from app.errors import ConfigError, FileProblems
from app.heap import settle_heap
from app.listening import open_listeners, serve_http
from app.metrics import multiprocess as metrics_multiprocess
from app.observability import configure_logging
from app.sandbox import command as sandbox_command
from app.unconfigured import log_unconfigured, unconfigured
from app.worker.supervisor import running_worker

logger = logging.getLogger(__name__)


class _Terminated(Exception):
    """SIGTERM, turned into an exception so that `finally` blocks (stopping Postgres) run."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voucher-relay", description="Voucherify webhooks to Braze custom attributes."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("--host", help="listen address (default: HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default: PORT, 8000)")
    serve.add_argument(
        "--no-worker", action="store_true", help="serve HTTP only; run `worker` processes apart"
    )
    serve.add_argument(
        "--migrate",
        action="store_true",
        help="upgrade the schema before serving (always done for the embedded database)",
    )

    commands.add_parser("migrate", help="upgrade the database schema to the newest revision")
    worker = commands.add_parser("worker", help="deliver to Braze (no HTTP); run as many as needed")
    worker.add_argument(
        "--metrics-port",
        type=int,
        help="serve GET /metrics on this port (on HOST): this process's counters, or all "
        "processes' with PROMETHEUS_MULTIPROC_DIR",
    )
    # `serve` runs its worker as a child and wakes it through this pipe (app.worker.supervisor).
    worker.add_argument("--wake-fd", type=int, help=argparse.SUPPRESS)

    emulator = commands.add_parser(
        "braze-emulator", help="serve a Braze /users/track emulator (a sandbox without Braze)"
    )
    emulator.add_argument("--host", default="0.0.0.0", help="listen address (default 0.0.0.0)")
    emulator.add_argument("--port", type=int, default=9000, help="listen port (default 9000)")
    emulator.add_argument("--latency-ms", type=float, default=0, help="delay every answer")

    voucherify = commands.add_parser(
        "voucherify-emulator",
        help="serve a Voucherify API emulator with sandbox data (a sandbox without Voucherify)",
    )
    voucherify.add_argument("--host", default="0.0.0.0", help="listen address (default 0.0.0.0)")
    voucherify.add_argument("--port", type=int, default=9001, help="listen port (default 9001)")
    voucherify.add_argument(
        "--empty", action="store_true", help="start without the sandbox's customers and campaign"
    )

    sandbox_command.add_parser(commands)

    distributions = commands.add_parser(
        "distributions", help="export or import distributions (configuration in git)"
    ).add_subparsers(dest="action", required=True)
    export = distributions.add_parser("export", help="write every live distribution to a file")
    export.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    export.add_argument("--format", choices=("yaml", "json"), help="default: from the file name")
    imports = distributions.add_parser(
        "import",
        help="create or update distributions by name from files (checked before the database)",
    )
    imports.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH",
        help="YAML or JSON files (as export writes them, or one distribution each) or folders",
    )  # fmt: skip
    imports.add_argument(
        "--prune", action="store_true",
        help="also delete the live distributions the files do not name (the files are the truth)",
    )  # fmt: skip
    imports.add_argument("--dry-run", action="store_true", help="report, change nothing")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    multiprocess_dir = private_dir = None
    try:
        settings = _load_settings()
        configure_logging(settings)
        if args.command == "serve" and not args.no_worker and not settings.prometheus_multiproc_dir:
            # `serve` and its worker child are two processes: /metrics sums both of them.
            private_dir = Path(tempfile.mkdtemp(prefix="voucher-relay-metrics-"))
            settings = settings.model_copy(update={"prometheus_multiproc_dir": private_dir})
        if args.command in ("serve", "worker") and settings.prometheus_multiproc_dir:
            multiprocess_dir = settings.prometheus_multiproc_dir
            metrics_multiprocess.use_directory(multiprocess_dir)
        if args.command == "serve":
            _serve(settings, args)
        elif args.command == "migrate":
            _migrate(settings)
        elif args.command == "worker":
            _worker(settings, args)
        elif args.command == "braze-emulator":
            _braze_emulator(settings, args)
        elif args.command == "voucherify-emulator":
            _voucherify_emulator(settings, args)
        elif args.command == "distributions":
            _distributions(settings, args)
        elif args.command == "sandbox":
            sandbox_command.run(settings, args)
    except ConfigError as exc:
        print(f"voucher-relay: configuration error: {exc.message}", file=sys.stderr)
        return 2
    except FileProblems as exc:
        for problem in exc.problems:
            print(f"voucher-relay: {problem}", file=sys.stderr)
        print("voucher-relay: nothing was changed", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, _Terminated):
        return 0
    finally:
        if multiprocess_dir is not None:
            metrics_multiprocess.process_exited(multiprocess_dir)
        if private_dir is not None:
            shutil.rmtree(private_dir, ignore_errors=True)
    return 0


def _load_settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        raise ConfigError("; ".join(_problem(err) for err in exc.errors())) from None


def _problem(err: ErrorDetails) -> str:
    """`SETTING: what is wrong`. A rule across settings (a model validator) has no location:
    its message names the settings itself."""
    error = err.get("ctx", {}).get("error")
    message = str(error) if err["type"] == "value_error" and error is not None else err["msg"]
    if not err["loc"]:
        return message
    return f"{'.'.join(str(part) for part in err['loc']).upper()}: {message}"


def _serve(settings: Settings, args: argparse.Namespace) -> None:
    # Imported late: `migrate` needs none of the web stack, and metrics must not exist before
    # their multiprocess directory is chosen.
    from app.main import create_app
    from app.webhooks.intake import PATH as WEBHOOK_PATH

    host = args.host if args.host is not None else settings.host
    port = args.port if args.port is not None else settings.port
    # First of all: a port in use stops here, before a Postgres is started or migrated.
    listeners = open_listeners(
        host,
        port,
        host_setting="--host" if args.host is not None else "HOST",
        port_setting="--port" if args.port is not None else "PORT",
    )
    try:
        with provide_database(settings) as (url, embedded):
            check_reachable(url, timeout=settings.db_connect_timeout_seconds)
            # After the checks that stop the command: a bad setting is still its one line.
            log_unconfigured(logger, unconfigured(settings, api=True, worker=not args.no_worker))
            if embedded or args.migrate:
                _upgrade_schema(url)
            else:
                _say_if_schema_behind(url)
            with contextlib.ExitStack() as worker:
                wake = None
                if not args.no_worker:
                    wake = worker.enter_context(running_worker(settings, url)).wake
                app = create_app(
                    settings, database_url=url, with_worker=wake is not None, wake_worker=wake
                )
                settle_heap()
                serve_http(
                    app, listeners, host=host, port=port, log_level=settings.log_level,
                    own_access_lines=(WEBHOOK_PATH,),
                )  # fmt: skip
    finally:
        for sock in listeners:
            sock.close()


def _distributions(settings: Settings, args: argparse.Namespace) -> None:
    from app.distributions import files

    # Files first: a missing or invalid one stops here, before a database is started or reached.
    checked = files.check(args.paths) if args.action == "import" else None

    async def run(session: AsyncSession) -> None:
        if args.action == "export":
            fmt = args.format or (
                "json" if args.output and args.output.suffix == ".json" else "yaml"
            )
            text = await files.export_text(session=session, fmt=fmt)
            if args.output:
                args.output.write_text(text, encoding="utf-8")
            else:
                sys.stdout.write(text)
            return
        assert checked is not None
        report = await files.import_checked(session=session, checked=checked, prune=args.prune)
        prefix = "dry run, nothing changed: " if args.dry_run else ""
        lines = [("created", report.created), ("updated", report.updated),
                 ("unchanged", report.unchanged)]  # fmt: skip
        if args.prune:
            lines.append(("deleted", report.deleted))
        for label, names in lines:
            print(f"{prefix}{label} ({len(names)}): {', '.join(names) or '-'}")

    with provide_database(settings) as (url, embedded):
        check_reachable(url, timeout=settings.db_connect_timeout_seconds)
        if embedded:
            _upgrade_schema(url)
        asyncio.run(_in_session(url, settings, run, commit=not getattr(args, "dry_run", False)))


async def _in_session(
    url: URL, settings: Settings, work: Callable[[AsyncSession], Awaitable[None]], *, commit: bool
) -> None:
    engine = create_engine(url, settings)
    try:
        async with create_sessionmaker(engine)() as session:
            await work(session)
            await (session.commit() if commit else session.rollback())
    finally:
        await engine.dispose()


def _worker(settings: Settings, args: argparse.Namespace) -> None:
    from app.delivery.stopping import stop_on
    from app.metrics.exposition import ProcessMetrics, serve_metrics
    from app.worker.process import listen_to_parent, run_when_schema_current

    supervised = args.wake_fd is not None  # a child of `serve`, which has said what it must

    async def work() -> None:
        stop, wake, signaled = asyncio.Event(), asyncio.Event(), asyncio.Event()
        engine = create_engine(url, settings)
        try:
            worker = asyncio.create_task(
                run_when_schema_current(settings, engine, stop, wake=wake, announce=not supervised),
                name="delivery-worker",
            )
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, signaled.set)
            if supervised:
                listen_to_parent(loop, args.wake_fd, wake=wake, parent_gone=signaled)
            waiter = asyncio.ensure_future(signaled.wait())
            await asyncio.wait({worker, waiter}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            await stop_on(stop, worker, grace=settings.braze_timeout_seconds + 5)
        finally:
            await engine.dispose()

    # First of all: a metrics port in use stops here, before a Postgres is started.
    metrics_server = None
    if args.metrics_port is not None:
        if not settings.metrics_enabled:
            raise ConfigError("--metrics-port: metrics are disabled (METRICS_ENABLED=false)")
        token = settings.metrics_token
        try:
            metrics_server = serve_metrics(
                host=settings.host, port=args.metrics_port,
                token=token.get_secret_value() if token else None,
                collector=ProcessMetrics(settings.prometheus_multiproc_dir),
            )  # fmt: skip
        except OSError as exc:
            raise ConfigError(
                f"--metrics-port: cannot listen on {settings.host}:{args.metrics_port}: "
                f"{(exc.strerror or str(exc)).lower()}"
            ) from None
    try:
        with provide_database(settings) as (url, embedded):
            check_reachable(url, timeout=settings.db_connect_timeout_seconds)
            if not supervised:
                log_unconfigured(logger, unconfigured(settings, api=False, worker=True))
            if embedded:
                _upgrade_schema(url)
            settle_heap()
            uvloop.run(work())  # the same event loop uvicorn serves with: cheaper socket I/O
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()


def _braze_emulator(settings: Settings, args: argparse.Namespace) -> None:
    from app.sandbox.braze.emulator import create_emulator, emulator_state

    if settings.braze_api_key is None:
        raise ConfigError("BRAZE_API_KEY: set the key the emulator accepts (any value)")
    listeners = open_listeners(args.host, args.port, host_setting="--host", port_setting="--port")
    app = create_emulator(api_key=settings.braze_api_key)
    emulator_state(app).faults.latency_ms = args.latency_ms
    serve_http(app, listeners, host=args.host, port=args.port, log_level=settings.log_level)


def _voucherify_emulator(settings: Settings, args: argparse.Namespace) -> None:
    from app.sandbox.voucherify.emulator import (
        create_voucherify_emulator,
        voucherify_emulator_state,
    )
    from app.sandbox.voucherify.seed import seed_sandbox

    if settings.voucherify_app_id is None or settings.voucherify_app_token is None:
        raise ConfigError(
            "VOUCHERIFY_APP_ID, VOUCHERIFY_APP_TOKEN: set the keys the emulator accepts "
            "(any values)"
        )
    listeners = open_listeners(args.host, args.port, host_setting="--host", port_setting="--port")
    app = create_voucherify_emulator(
        app_id=settings.voucherify_app_id, app_token=settings.voucherify_app_token
    )
    if not args.empty:
        seed_sandbox(voucherify_emulator_state(app))
    serve_http(app, listeners, host=args.host, port=args.port, log_level=settings.log_level)


def _migrate(settings: Settings) -> None:
    # Here, and only here, alembic says what it runs (elsewhere its lines wait for LOG_LEVEL=debug).
    logging.getLogger("alembic").setLevel(settings.log_level.upper())
    with provide_database(settings) as (url, _):
        check_reachable(url, timeout=settings.db_connect_timeout_seconds)
        _upgrade_schema(url)


def _upgrade_schema(url: URL) -> None:
    """Upgrade to the code's head and say, in one line, where the schema was and is now."""
    before = read_revision(url)
    migrations.upgrade(url)
    after = read_revision(url)
    if before == after:
        logger.info("database schema at revision %s: nothing to upgrade", after)
    else:
        logger.info("database schema upgraded from %s to revision %s", before or "nothing", after)


def _say_if_schema_behind(url: URL) -> None:
    """`serve` without `--migrate` leaves the schema alone; one line when it is not current."""
    state = judge(read_revision(url), code_revisions())
    if not state.ok:
        logger.warning("not ready: %s; /readyz answers 503 until then", state.problem)
