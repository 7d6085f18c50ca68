"""docs/configuration.md, generated from the Settings class (`make docs`); a test fails when the
page and the class disagree, so the page cannot drift."""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from app.config import Settings

PAGE = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"

INTRO = """\
# Configuration

<!-- Generated from app/config.py by `make docs`; edit the descriptions there. -->

Settings come from the environment or from a `.env` file in the working directory (the
environment wins). `make env` writes a `.env` from [`.env.example`](../.env.example) with a new
ops API token and webhook secret; none of the settings is needed for a first `make run`. A
setting with a bad value stops the command with one line naming it (exit status 2).

Secrets (DATABASE_URL's password, webhook secrets, API keys and tokens) are never printed:
every log line passes a filter that replaces them with `[redacted]`.

What a process runs without: start-up logs one block naming the settings left unset and what
that disables, and `GET /readyz` lists the same under `not_configured`.

| setting | default | what it does |
|---|---|---|
"""


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return "empty"
    if field.default is None or field.default is PydanticUndefined:
        return "unset"
    if isinstance(field.default, bool):
        return f"`{str(field.default).lower()}`"
    return f"`{field.default}`"


def render() -> str:
    rows = [
        f"| `{name.upper()}` | {_default(field)} | {field.description} |"
        for name, field in Settings.model_fields.items()
    ]
    return INTRO + "\n".join(rows) + "\n"


if __name__ == "__main__":
    PAGE.parent.mkdir(exist_ok=True)
    PAGE.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {PAGE}\n")
