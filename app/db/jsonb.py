"""JSON that a jsonb column keeps and that the workers can read back.

The workers decode jsonb with orjson, which reads every number as a 64-bit integer or a double:
a number out of a double's range (an integer of 400 digits, which Postgres keeps) does not read
back, and a row holding one fails every query that returns it. Python's json module, which
decodes Voucherify's answers, takes such numbers, NaN and unpaired surrogates alike.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def jsonb_problem(value: Any) -> str | None:
    """Why `value` cannot go into a jsonb column and be read back, or None when it can."""
    try:
        orjson.loads(json.dumps(value, allow_nan=False))
    except ValueError as exc:  # orjson.JSONDecodeError is one
        return f"not JSON that can be stored and read back ({exc})"
    return None
