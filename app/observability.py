"""Logging setup (structured JSON logs and metrics arrive with the operations work)."""

from __future__ import annotations

import logging
import sys


def configure_logging(level: str = "info") -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
