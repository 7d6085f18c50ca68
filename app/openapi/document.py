"""The OpenAPI document FastAPI builds, completed: every field described, enums where the code
has a closed set, an example for every body and answer, the errors each operation really
answers, and the webhook's raw body and signature header (its route reads the bytes itself)."""

from __future__ import annotations

import copy
from typing import Any, get_args

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts

from app.delivery.models import STATUSES, TRIGGERS
from app.distributions.triggers import KNOWN_TRIGGERS
from app.errors import ErrorBody
from app.openapi import examples
from app.openapi.errors import error_statuses
from app.openapi.glossary import describe
from app.ops.models import REPLAY_STATUSES
from app.runs.schemas import RunStatus
from app.webhooks import intake
from app.webhooks.matching import Outcome

JSON = "application/json"
ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
SORTED_TRIGGERS = sorted(KNOWN_TRIGGERS)
# (schema, field): the closed set of values the code allows there.
ENUMS: dict[tuple[str, str], list[str]] = {
    ("DeliverySummary", "status"): list(STATUSES),
    ("DeliverySummary", "trigger"): list(TRIGGERS),
    ("Attempt", "trigger"): list(TRIGGERS),
    ("EventSummary", "outcome"): list(get_args(Outcome)),
    ("ReplayRead", "kind"): ["delivery", "event", "distribution", "bulk"],
    ("ReplayRead", "trigger"): ["manual", "bulk"],
    ("ReplayRead", "status"): list(REPLAY_STATUSES),
    ("RunSummary", "status"): list(get_args(RunStatus)),
    ("DistributionConfig", "triggers"): SORTED_TRIGGERS,
    ("DistributionPatch", "triggers"): SORTED_TRIGGERS,
}
_INHERITED = {"DeliveryDetail": "DeliverySummary", "EventDetail": "EventSummary",
              "ReplayCanceled": "ReplayRead", "RunDetail": "RunSummary",
              "DistributionRead": "DistributionConfig"}  # fmt: skip


def install_document(app: FastAPI) -> None:
    """Make `app.openapi()` return the completed document (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def build(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(
        title=app.title, version=app.version, summary=app.summary,
        description=app.description, routes=app.routes, tags=app.openapi_tags,
    )  # fmt: skip
    schemas: dict[str, Any] = document["components"]["schemas"]
    schemas.setdefault("ErrorBody", ErrorBody.model_json_schema(
        ref_template="#/components/schemas/{model}"
    ))  # fmt: skip
    for name, definition in schemas["ErrorBody"].pop("$defs", {}).items():
        schemas.setdefault(name, definition)
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)  # our 422 answers are ErrorBody, like every error
    _complete_schemas(schemas)
    # Included routers nest their routes: their contexts carry the full path.
    routes = {
        (method, context.path_format): context.original_route
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute)
        for method in context.methods or ()
    }  # fmt: skip
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if path.startswith("/api/v1/"):
                _ops_errors(operation, routes[(method.upper(), path)], method.upper())
            _examples(operation, schemas)
            _enum_parameters(operation)
    _webhook(document["paths"][intake.PATH]["post"])
    _readiness(document["paths"]["/readyz"]["get"])
    _liveness(document["paths"]["/healthz"]["get"])
    _metrics(document["paths"]["/metrics"]["get"])
    return document


def _complete_schemas(schemas: dict[str, Any]) -> None:
    for name, schema in schemas.items():
        for field, spec in schema.get("properties", {}).items():
            if "description" not in spec and (text := describe(name, field)):
                spec["description"] = text
            values = ENUMS.get((name, field)) or ENUMS.get((_INHERITED.get(name, ""), field))
            if values is not None:
                _set_enum(spec, values)
        if name in examples.SCHEMAS:
            schema["examples"] = [examples.SCHEMAS[name]]


def _set_enum(spec: dict[str, Any], values: list[str]) -> None:
    """On the string (or the array's items), also inside `anyOf` with null."""
    for variant in spec.get("anyOf", [spec]):
        if variant.get("type") == "array":
            variant["items"]["enum"] = values
        elif variant.get("type") == "string":
            variant["enum"] = values


def _enum_parameters(operation: dict[str, Any]) -> None:
    for parameter in operation.get("parameters", []):
        if parameter["name"] == "trigger" and parameter["in"] == "query":
            schema = parameter["schema"]
            if not any("enum" in v for v in schema.get("anyOf", [schema])):
                _set_enum(schema, SORTED_TRIGGERS)


def _ops_errors(operation: dict[str, Any], route: APIRoute, method: str) -> None:
    responses = operation["responses"]
    for status in [s for s in responses if s[0] in "45"]:
        del responses[status]
    for status, description in error_statuses(route, method).items():
        example = copy.deepcopy(examples.ERRORS[status])
        if status == 409:
            example["error"]["message"] = description
        responses[str(status)] = {
            "description": description,
            "content": {JSON: {"schema": ERROR_REF, "example": example}},
        }


def _examples(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    body = operation.get("requestBody", {}).get("content", {}).get(JSON)
    if body is not None:
        body["example"] = _example_of(body["schema"], schemas) or examples.WEBHOOK_BODY
    for response in operation["responses"].values():
        content = response.get("content", {}).get(JSON)
        if content is not None and "example" not in content:
            example = _example_of(content.get("schema", {}), schemas)
            if example is not None:
                content["example"] = example


def _example_of(schema: dict[str, Any], schemas: dict[str, Any]) -> Any:
    for variant in schema.get("anyOf", [schema]):
        if "$ref" in variant:
            name = variant["$ref"].rsplit("/", 1)[-1]
            return schemas[name].get("examples", [None])[0]
    return None


def _webhook(operation: dict[str, Any]) -> None:
    operation["description"] = (
        "Voucherify's webhook target: point a project webhook (version v2024-01-01) or a "
        "distribution's Webhook channel at `https://<your host>/webhooks/voucherify`. The "
        "signature is the authentication: no bearer token. An answer in 2xx means the event "
        "and its deliveries are committed; anything else makes Voucherify retry (12 times "
        "over 24 h)."
    )
    operation["parameters"] = [{
        "name": "x-voucherify-signature", "in": "header", "required": True,
        "description": "lower-case hex HMAC-SHA256 of the body with VOUCHERIFY_WEBHOOK_SECRET "
        "(checked over the bytes as sent, then over the body without whitespace outside strings)",
        "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "example": "5f2b0c4d9e8a7f6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b",
    }]  # fmt: skip
    operation["requestBody"] = {"required": True, "content": {JSON: {
        "schema": {
            "type": "object",
            "description": "a Voucherify webhook envelope, v2024-01-01 (unknown fields are "
            "ignored, unknown event types stored as ignored)",
            "required": ["id", "event", "data", "source"],
            "properties": {
                "id": {"type": "string", "description": "the send-out id (whs_...)"},
                "project_id": {"type": "string", "description": "the Voucherify project"},
                "created_at": {"type": "string", "format": "date-time",
                               "description": "when Voucherify sent it"},
                "type": {"type": "string", "description": "a label (distribution webhooks: "
                         "free text); dispatch is on event.type"},
                "source": {"type": "object", "description": "`object`: webhook or "
                           "distribution; `id`: which"},
                "event": {"type": "object", "description": "`id`, `type` (a trigger), "
                          "`created_at` (orders values per attribute), `entity_id`"},
                "data": {"type": "object", "description": "what the mapping reads: customer, "
                         "voucher, order, ..."},
            },
        },
        "example": examples.WEBHOOK_BODY,
    }}}  # fmt: skip
    responses = operation["responses"]
    responses["200"]["content"][JSON]["example"] = examples.SCHEMAS["WebhookAccepted"] | {
        "duplicate": True
    }
    webhook_errors = {
        400: {"code": "invalid_webhook", "message": "not a v2024-01-01 envelope: event.type "
              "is missing"},
        401: {"code": "bad_signature", "message": "invalid x-voucherify-signature header"},
        413: {"code": "body_too_large", "message": "the body is 2097152 bytes; the limit is "
              "1048576"},
        503: {"code": "database_unavailable", "message": "the database is unavailable; retry "
              "later"},
    }  # fmt: skip
    for status, error in webhook_errors.items():
        responses[str(status)]["content"] = {
            JSON: {"schema": ERROR_REF, "example": {"error": error}}
        }
    responses["503"]["headers"] = {"Retry-After": {
        "description": "seconds to wait", "schema": {"type": "integer"}}}  # fmt: skip


def _readiness(operation: dict[str, Any]) -> None:
    schema = {
        "type": "object",
        "required": ["status", "checks", "not_configured"],
        "properties": {
            "status": {"type": "string", "enum": ["ready", "not_ready"],
                       "description": "ready when every check is ok"},
            "checks": {"type": "object", "description": "database (it answers), schema (at "
                       "this code's alembic revision: else `error` says what to run), braze "
                       "(not refusing our key); each with `ok` and, when not, `error`",
                       "additionalProperties": {"type": "object"}},
            "not_configured": {"type": "array", "description": "information, not a check: the "
                               "settings left unset and what that disables",
                               "items": {"type": "object", "properties": {
                                   "settings": {"type": "array", "items": {"type": "string"},
                                                "description": "the settings"},
                                   "disables": {"type": "string",
                                                "description": "what does not work"}}}},
        },
    }  # fmt: skip
    operation["responses"] = {
        "200": {"description": "ready", "content": {JSON: {"schema": schema,
                "example": examples.READY}}},
        "503": {"description": "not ready: a check failed, its `error` says why and what to do",
                "content": {JSON: {"schema": schema, "example": examples.NOT_READY}}},
    }  # fmt: skip


def _liveness(operation: dict[str, Any]) -> None:
    content = operation["responses"]["200"]["content"][JSON]
    content["schema"]["description"] = "always ok while the process runs"
    content["example"] = {"status": "ok"}


def _metrics(operation: dict[str, Any]) -> None:
    responses = operation["responses"]
    for content in responses["200"].get("content", {}).values():
        content["schema"] = {"type": "string", "description": "the Prometheus text format"}
        content["example"] = examples.METRICS
    responses["401"] = {
        "description": "METRICS_TOKEN is set and the bearer token is not it",
        "content": {JSON: {"schema": ERROR_REF, "example": examples.ERRORS[401]}},
    }
    responses["404"] = {
        "description": "METRICS_ENABLED=false",
        "content": {
            JSON: {
                "schema": ERROR_REF,
                "example": {
                    "error": {
                        "code": "not_found",
                        "message": "metrics are disabled (METRICS_ENABLED=false)",
                    }
                },
            }
        },
    }
