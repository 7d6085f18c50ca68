"""Postgres stores no NUL character (U+0000) in text or jsonb. Event data is foreign: the few
places that store parts of it as text or jsonb clean it first, visibly."""

from __future__ import annotations

from typing import Any

NUL = "\x00"
# What a NUL becomes in stored free text (error details, audit context): visible, not silent.
REPLACEMENT = "\ufffd"


def contains_nul(value: Any) -> bool:
    """True when a string anywhere in `value` (dict keys included) holds a NUL."""
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, dict):
        return any(contains_nul(k) or contains_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(contains_nul(v) for v in value)
    return False


def without_nul(value: Any) -> Any:
    """`value` with every NUL replaced by U+FFFD (a new object; the input is left as is)."""
    if isinstance(value, str):
        return value.replace(NUL, REPLACEMENT)
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [without_nul(v) for v in value]
    return value
