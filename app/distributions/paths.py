"""Source paths such as `voucher.code` or `vouchers[0].gift.balance`: parsing and lookup."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

_SEGMENT = r"[A-Za-z_][A-Za-z0-9_]*(?:\[\d+\])*"
PATH_PATTERN = re.compile(rf"^{_SEGMENT}(?:\.{_SEGMENT})*$")
_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")
MAX_PATH_LENGTH = 200


class _Missing:
    def __repr__(self) -> str:
        # Readable wherever it ends up in a message (never `<object object at 0x...>`).
        return "<missing>"


MISSING: Any = _Missing()
"""Returned by `lookup` when the path does not exist (as opposed to existing with null)."""


def check_path(path: str) -> str:
    """Return the path if it is well formed; ValueError says what is wrong otherwise."""
    if not path or len(path) > MAX_PATH_LENGTH or not PATH_PATTERN.match(path):
        raise ValueError(
            f"{path!r} is not a source path: use dotted names with optional [index], "
            "e.g. voucher.code or vouchers[0].gift.balance"
        )
    return path


@lru_cache(maxsize=4096)
def split_path(path: str) -> tuple[str | int, ...]:
    # Cached: the same few paths are looked up for every webhook.
    return tuple(name if name else int(index) for name, index in _PART.findall(path))


def lookup(root: Any, path: str | Sequence[str | int]) -> Any:
    """The value at `path` under `root`, or MISSING when any step does not exist."""
    current = root
    for part in split_path(path) if isinstance(path, str) else path:
        if isinstance(part, int):
            if not isinstance(current, list) or part >= len(current):
                return MISSING
        elif not isinstance(current, dict) or part not in current:
            return MISSING
        current = current[part]
    return current
