"""The `voucher-relay` command (also `python -m app`)."""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

import uvicorn
from pydantic import ValidationError

from app import __version__
from app.config import Settings, get_settings
from app.db import migrate as migrations
from app.db.startup import check_reachable, provide_database
from app.errors import ConfigError
from app.observability import configure_logging


class _Terminated(Exception):
    """SIGTERM, turned into an exception so that `finally` blocks (stopping Postgres) run."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voucher-relay", description="Voucherify webhooks to Braze custom attributes."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("--host", help="listen address (default: HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default: PORT, 8000)")
    serve.add_argument(
        "--migrate",
        action="store_true",
        help="upgrade the schema before serving (always done for the embedded database)",
    )

    commands.add_parser("migrate", help="upgrade the database schema to the newest revision")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        settings = _load_settings()
        configure_logging(settings.log_level)
        if args.command == "serve":
            _serve(settings, args)
        elif args.command == "migrate":
            _migrate(settings)
    except ConfigError as exc:
        print(f"voucher-relay: configuration error: {exc.message}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, _Terminated):
        return 0
    return 0


def _load_settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(problems) from None


def _serve(settings: Settings, args: argparse.Namespace) -> None:
    from app.main import create_app  # imported late: `migrate` needs none of the web stack

    with provide_database(settings) as (url, embedded):
        check_reachable(url, timeout=settings.db_connect_timeout_seconds)
        if embedded or args.migrate:
            migrations.upgrade(url)
        app = create_app(settings, database_url=url)
        uvicorn.run(
            app,
            host=args.host or settings.host,
            port=args.port or settings.port,
            log_level=settings.log_level,
            log_config=None,
        )


def _migrate(settings: Settings) -> None:
    with provide_database(settings) as (url, _):
        check_reachable(url, timeout=settings.db_connect_timeout_seconds)
        migrations.upgrade(url)
