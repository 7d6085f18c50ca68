"""`make env`: write `.env` from `.env.example` with a new ops API token and webhook secret, the
first step before `make run` or `docker compose up`. Standard library only: it runs before any
dependency is installed (`python3 -m app.envfile`)."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

TOKEN_NAME = "admin"


def render(example: str, *, token: str, secret: str) -> str:
    """`.env.example` with OPS_API_TOKENS and VOUCHERIFY_WEBHOOK_SECRET set (uncommented)."""
    values = {
        "OPS_API_TOKENS": f"{TOKEN_NAME}:write:{token}",
        "VOUCHERIFY_WEBHOOK_SECRET": secret,
    }
    lines = []
    for line in example.splitlines():
        name = line.removeprefix("# ").split("=", 1)[0]
        if line.startswith("# ") and name in values and line.endswith("="):
            line = f"{name}={values.pop(name)}"
        lines.append(line)
    if values:
        raise ValueError(f".env.example has no empty `# NAME=` line for {', '.join(values)}")
    return "\n".join(lines) + "\n"


def write(target: Path, example: Path) -> tuple[str, str]:
    """Create `target` (readable by its owner only); FileExistsError if it exists."""
    token, secret = secrets.token_urlsafe(24), secrets.token_hex(24)
    text = render(example.read_text(encoding="utf-8"), token=token, secret=secret)
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    return token, secret


def main() -> int:
    target, example = Path(".env"), Path(".env.example")
    try:
        token, _ = write(target, example)
    except FileExistsError:
        print(f"{target} exists already: edit it, or move it away to write a new one")
        return 1
    print(
        f"wrote {target} (only you can read it):\n"
        f"  OPS_API_TOKENS={TOKEN_NAME}:write:{token}   the ops API's bearer token is {token}\n"
        "  VOUCHERIFY_WEBHOOK_SECRET=...   for local tests; put your Voucherify webhook's "
        "secret key there\n"
        f"Braze, Voucherify and the database: see the comments in {target}."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
