"""What a distribution must meet to be created, changed or imported, beyond its schema: attribute
names the Liquid snippets can read (names.LIQUID_RULES), and sources (mapping and identity path)
that name a field of the catalogue (fields.py).

Never checked when a stored distribution is read: one stored before a rule existed keeps
matching and delivering. What it already holds also passes when it is changed or imported
again (a mapping item, the identity path, as they are), so that a script that reads, edits and
writes it back, or an export imported again, is not refused for what it did not touch.
"""

from __future__ import annotations

from typing import Any

from app.distributions.fields import unknown_source
from app.distributions.names import LIQUID_RULES, broken_rule, describe
from app.distributions.schemas import DistributionConfig


def problems(
    config: DistributionConfig, *, stored: DistributionConfig | None = None
) -> list[dict[str, Any]]:
    """Each rule `config` breaks, as a validation error detail (loc, message, type); `stored` is
    the version it replaces, if any. Empty when it may be stored."""
    found: list[dict[str, Any]] = []
    kept = stored.mapping if stored is not None else []
    for index, item in enumerate(config.mapping):
        if item in kept:
            continue
        if (rule := broken_rule(item.attribute, LIQUID_RULES)) is not None:
            found.append(_detail(("mapping", index, "attribute"), describe(item.attribute, rule)))
        if (reason := unknown_source(item.source)) is not None:
            found.append(_detail(("mapping", index, "source"), reason))
    path = config.identity.path
    unchanged = stored is not None and stored.identity.path == path
    if path is not None and not unchanged and (reason := unknown_source(path)) is not None:
        found.append(_detail(("identity", "path"), reason))
    return found


def _detail(loc: tuple[str | int, ...], message: str) -> dict[str, Any]:
    return {"loc": list(loc), "message": message, "type": "value_error"}
