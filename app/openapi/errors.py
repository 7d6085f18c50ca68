"""Which errors each ops API operation can answer, from what it has: every one needs a token
(401) and the database (503); one that changes something needs a write token (403); an id in
the path can be unknown (404); parameters and bodies can be invalid (422); a JSON body can fail
to parse (400), be too large (413) or not be JSON (415); and only some refuse a state (409)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from app.api.auth import writer

DESCRIPTIONS = {
    400: "the body is not valid JSON (or not UTF-8)",
    401: "missing or unknown bearer token (OPS_API_TOKENS)",
    403: "the token is read-only: this operation needs scope write",
    404: "no such {what}",
    409: "{why}",
    413: "the body is over API_MAX_BODY_BYTES",
    415: "the body was not sent with Content-Type: application/json",
    422: "the request is invalid: `details` says where",
    503: "the database is unavailable (Retry-After), or its schema is not migrated for this "
    "version",
}

# The operations that refuse a state, and why (app/*/service.py raise ConflictError).
CONFLICTS: dict[tuple[str, str], str] = {
    ("POST", "/api/v1/distributions"): "a live distribution has this name",
    ("PUT", "/api/v1/distributions/{distribution_id}"):
        "the distribution is deleted, or another live one has the new name",
    ("PATCH", "/api/v1/distributions/{distribution_id}"):
        "the distribution is deleted, or another live one has the new name",
    ("DELETE", "/api/v1/distributions/{distribution_id}"): "the distribution is deleted already",
    ("POST", "/api/v1/distributions/{distribution_id}/pause"): "the distribution is deleted",
    ("GET", "/api/v1/distributions/{distribution_id}/liquid"):
        "an attribute name stored before the naming rules cannot be read in Liquid",
    ("POST", "/api/v1/distributions/{distribution_id}/resume"): "the distribution is deleted",
    ("POST", "/api/v1/distributions/{distribution_id}/runs"):
        "the distribution is paused (resume it first)",
    ("POST", "/api/v1/distributions/{distribution_id}/replay"):
        "the distribution is paused or deleted: only active ones replay",
    ("POST", "/api/v1/deliveries/{delivery_id}/replay"):
        "the delivery is still pending or in flight, or has nothing to send",
    ("POST", "/api/v1/replays/{replay_id}/cancel"): "the replay is canceled already",
    ("POST", "/api/v1/runs/{run_id}/cancel"): "the run has finished",
    ("POST", "/api/v1/runs/{run_id}/resume"):
        "the run did not give up on Voucherify, or its distribution is paused or deleted",
}  # fmt: skip


def error_statuses(route: APIRoute, method: str) -> dict[int, str]:
    """The error statuses `method` on `route` can answer, each with its description."""
    dependant = route.dependant
    errors = {401: DESCRIPTIONS[401], 503: DESCRIPTIONS[503]}
    if _uses(dependant, writer):
        errors[403] = DESCRIPTIONS[403]
    if dependant.path_params:
        what = dependant.path_params[0].name.removesuffix("_id").replace("_", " ")
        errors[404] = DESCRIPTIONS[404].format(what=what)
    if dependant.path_params or dependant.query_params or dependant.body_params:
        errors[422] = DESCRIPTIONS[422]
    if dependant.body_params:
        errors |= {code: DESCRIPTIONS[code] for code in (400, 413, 415)}
    # path_format: the documented path, without a route's convertors ({replay_id:uuid}).
    if (why := CONFLICTS.get((method, route.path_format))) is not None:
        errors[409] = DESCRIPTIONS[409].format(why=why)
    return dict(sorted(errors.items()))


def _uses(dependant: Dependant, call: Callable[..., Any]) -> bool:
    return any(sub.call is call for sub in _all(dependant))


def _all(dependant: Dependant) -> Iterator[Dependant]:
    for sub in dependant.dependencies:
        yield sub
        yield from _all(sub)
