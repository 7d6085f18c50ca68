"""/console/distributions: the list with last-24h counts; create and edit with the field
catalogue, errors next to their fields, a live preview and the Liquid snippets; pause, resume,
export. Every rule is the API's: DistributionConfig and the distributions service."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.console import queries
from app.console.auth import ActingDep, SignedInDep, WriterDep, field, read_form
from app.console.pages import render
from app.db.session import SessionDep
from app.distributions import files, repository, service
from app.distributions import preview as preview_service
from app.distributions.fields import FIELDS, NOTES
from app.distributions.schemas import FORMATS, DistributionConfig
from app.distributions.triggers import CUSTOMER_TRIGGERS, MANUAL_TRIGGER, PROJECT_TRIGGERS
from app.errors import VoucherRelayError
from app.webhooks.models import WebhookEvent

router = APIRouter(prefix="/console/distributions", include_in_schema=False)

TRIGGERS = (*CUSTOMER_TRIGGERS, MANUAL_TRIGGER, *PROJECT_TRIGGERS)
IDENTITY_TYPES = ("external_id", "user_alias", "braze_id", "email")
MAPPING_ROWS = 3  # blank rows offered below the mapped ones


def uuid_or_none(value: str) -> uuid.UUID | None:
    return uuid.UUID(value) if value else None


@router.get("")
async def distributions(request: Request, session: SessionDep, user: SignedInDep) -> HTMLResponse:
    rows = await repository.list_all(session)
    return render(
        request,
        "distributions.html",
        user,
        rows=rows,
        counts=await queries.last_24h(session),
        count_cap=queries.COUNT_CAP,
    )


@router.get("/export")
async def export(session: SessionDep, _: SignedInDep, format: str = "yaml") -> Response:
    fmt = "json" if format == "json" else "yaml"
    body = await files.export_text(session=session, fmt=fmt)
    return Response(
        body,
        media_type="application/json" if fmt == "json" else "application/yaml",
        headers={"Content-Disposition": f'attachment; filename="distributions.{fmt}"'},
    )


@router.get("/new")
async def new(request: Request, user: WriterDep) -> HTMLResponse:
    return _form(request, user, values=_values(None), errors={}, distribution=None)


@router.post("/new")
async def create(request: Request, session: SessionDep, user: ActingDep) -> Response:
    form = await read_form(request)
    config, errors = _config(form, stored=None)
    if config is not None:
        try:
            created = await service.create(session=session, config=config)
        except VoucherRelayError as exc:
            errors = _from_details(exc.details) or {"form": [exc.message]}
        else:
            return RedirectResponse(f"/console/distributions/{created.id}", 303)
    return _form(
        request,
        user,
        values=_values_of_form(form),
        errors=errors,
        distribution=None,
        status_code=422,
    )


@router.get("/{distribution_id:uuid}")
async def edit(
    request: Request, distribution_id: uuid.UUID, session: SessionDep, user: SignedInDep
) -> HTMLResponse:
    stored = await service.get_or_404(session=session, distribution_id=distribution_id)
    config = service.to_config(stored)
    return _form(
        request,
        user,
        values=_values(config),
        errors={},
        distribution=stored,
        liquid=preview_service.liquid(distribution_id=stored.id, config=config),
    )


@router.post("/{distribution_id:uuid}")
async def save(
    request: Request, distribution_id: uuid.UUID, session: SessionDep, user: ActingDep
) -> Response:
    stored = await service.get_or_404(session=session, distribution_id=distribution_id)
    form = await read_form(request)
    config, errors = _config(form, stored=service.to_config(stored))
    if config is not None:
        try:
            await service.replace(session=session, distribution_id=distribution_id, config=config)
        except VoucherRelayError as exc:
            errors = _from_details(exc.details) or {"form": [exc.message]}
        else:
            return RedirectResponse(f"/console/distributions/{distribution_id}?saved=1", 303)
    return _form(
        request,
        user,
        values=_values_of_form(form),
        errors=errors,
        distribution=stored,
        status_code=422,
    )


@router.post("/{distribution_id:uuid}/pause")
async def pause(distribution_id: uuid.UUID, session: SessionDep, _: ActingDep) -> Response:
    await service.set_status(session=session, distribution_id=distribution_id, status="paused")
    return RedirectResponse("/console/distributions", 303)


@router.post("/{distribution_id:uuid}/resume")
async def resume(distribution_id: uuid.UUID, session: SessionDep, _: ActingDep) -> Response:
    await service.set_status(session=session, distribution_id=distribution_id, status="active")
    return RedirectResponse("/console/distributions", 303)


@router.post("/preview")
async def preview(request: Request, session: SessionDep, user: SignedInDep) -> HTMLResponse:
    """The form's configuration (saved or not) against the pasted event, or the newest stored
    event of its triggers. Nothing is stored or sent."""
    form = await read_form(request)
    config, errors = _config(form, stored=None)
    context: dict[str, Any] = {"errors": errors}
    if config is not None:
        pasted = field(form, "sample")
        try:
            if pasted:
                body = orjson.loads(pasted)
                context["source"] = "the pasted event"
            else:
                event = await _newest_event(session, config.triggers)
                if event is None:
                    raise ValueError("no stored event of these triggers yet: paste one")
                body = orjson.loads(event.raw_body or b"{}")
                context["source"] = f"event {event.id} ({event.event_type})"
            if not isinstance(body, dict):
                raise ValueError("the pasted event is not a JSON object")
            envelope = preview_service.check_envelope(body)
            context["result"] = preview_service.preview(config=config, envelope=envelope)
        except orjson.JSONDecodeError as exc:
            context["problem"] = f"the pasted event is not JSON: {exc}"
        except ValueError as exc:
            context["problem"] = str(exc)
        except VoucherRelayError as exc:
            context["problem"] = exc.message
    return render(request, "preview_result.html", user, **context)


async def _newest_event(session: AsyncSession, triggers: list[str]) -> WebhookEvent | None:
    """Each trigger's newest event through (event_type, received_at); the newest of those."""
    newest: WebhookEvent | None = None
    for trigger in triggers:
        event = await session.scalar(
            select(WebhookEvent)
            .where(WebhookEvent.event_type == trigger)
            .order_by(WebhookEvent.received_at.desc())
            .limit(1)
        )
        if event is not None and (newest is None or event.received_at > newest.received_at):
            newest = event
    return newest


def _form(
    request: Request,
    user: Any,
    *,
    values: dict[str, Any],
    errors: dict[str, list[str]],
    distribution: Any,
    status_code: int = 200,
    liquid: Any = None,
) -> HTMLResponse:
    return render(
        request,
        "distribution_form.html",
        user,
        values=values,
        errors=errors,
        distribution=distribution,
        liquid=liquid,
        fields=FIELDS,
        notes=NOTES,
        triggers=TRIGGERS,
        identity_types=IDENTITY_TYPES,
        formats=FORMATS,
        saved=request.query_params.get("saved"),
        status_code=status_code,
    )


def _values(config: DistributionConfig | None) -> dict[str, Any]:
    """What the form shows for a stored configuration (None: a new one)."""
    if config is None:
        return {
            "name": "",
            "description": "",
            "triggers": [],
            "identity_type": "external_id",
            "identity_path": "",
            "alias_label": "",
            "code_source": "event",
            "campaign": "",
            "consent_key": "",
            "action": "set",
            "update_existing_only": False,
            "status": "active",
            "filters": {},
            "mapping": _blank_rows([]),
        }
    dumped = config.model_dump(mode="json")
    return {
        "name": config.name,
        "description": config.description or "",
        "triggers": config.triggers,
        "identity_type": config.identity.type,
        "identity_path": config.identity.path or "",
        "alias_label": config.identity.alias_label or "",
        "code_source": config.code_source.type,
        "campaign": getattr(config.code_source, "campaign", ""),
        "consent_key": config.consent.metadata_key if config.consent else "",
        "action": config.action,
        "update_existing_only": config.update_existing_only,
        "status": config.status,
        "filters": dumped["filters"],
        "mapping": _blank_rows([m.model_dump() for m in config.mapping]),
    }


def _blank_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    blank = {"source": "", "attribute": "", "format": "raw"}
    return rows + [dict(blank) for _ in range(MAPPING_ROWS)]


def _rows(form: dict[str, list[str]]) -> list[dict[str, str]]:
    sources, attributes = form.get("source", []), form.get("attribute", [])
    formats = form.get("format", [])
    rows = []
    for index, source in enumerate(sources):
        attribute = attributes[index] if index < len(attributes) else ""
        fmt = formats[index] if index < len(formats) else "raw"
        if source.strip() or attribute.strip():
            rows.append({"source": source.strip(), "attribute": attribute.strip(), "format": fmt})
    return rows


def _values_of_form(form: dict[str, list[str]]) -> dict[str, Any]:
    """What was typed, shown again beside its errors."""
    values: dict[str, Any] = {
        name: field(form, name)
        for name in (
            "name",
            "description",
            "identity_type",
            "identity_path",
            "alias_label",
            "code_source",
            "campaign",
            "consent_key",
            "action",
            "status",
        )
    }
    values["triggers"] = form.get("triggers", [])
    values["update_existing_only"] = field(form, "update_existing_only") == "on"
    values["filters"] = orjson.loads(field(form, "filters") or "{}")
    values["mapping"] = _blank_rows(_rows(form))
    return values


def _config(
    form: dict[str, list[str]], *, stored: DistributionConfig | None
) -> tuple[DistributionConfig | None, dict[str, list[str]]]:
    """The form as a DistributionConfig, or the errors by form field."""
    document: dict[str, Any] = {
        "name": field(form, "name"),
        "description": field(form, "description") or None,
        "triggers": form.get("triggers", []),
        "identity": {
            "type": field(form, "identity_type") or "external_id",
            "path": field(form, "identity_path") or None,
            "alias_label": field(form, "alias_label") or None,
        },
        "code_source": {"type": "event"}
        if field(form, "code_source") != "publish"
        else {"type": "publish", "campaign": field(form, "campaign")},
        "consent": {"metadata_key": field(form, "consent_key")}
        if field(form, "consent_key")
        else None,
        "mapping": _rows(form),
        "action": field(form, "action") or "set",
        "update_existing_only": field(form, "update_existing_only") == "on",
        "status": field(form, "status") or "active",
    }
    try:
        document["filters"] = orjson.loads(field(form, "filters") or "{}")
        config = DistributionConfig.model_validate(document)
    except orjson.JSONDecodeError:
        return None, {"filters": ["not JSON"]}
    except ValidationError as exc:
        details = [{"loc": e["loc"], "message": e["msg"]} for e in exc.errors()]
        return None, _from_details(details)
    if stored is None:
        # The rules for new configurations (Liquid-safe names, known sources) run in the
        # service; a preview needs them too.
        try:
            service.check_new(config)
        except VoucherRelayError as exc:
            return None, _from_details(exc.details)
    return config, {}


def _from_details(details: Any) -> dict[str, list[str]]:
    """Validation details (loc, message) by the form field they are about."""
    errors: dict[str, list[str]] = {}
    for detail in details or []:
        loc = list(detail.get("loc") or ())
        if loc[:1] == ["mapping"] and len(loc) >= 3:
            key = f"{loc[2]}_{loc[1]}"
        elif loc[:1] == ["identity"]:
            key = "identity"
        elif loc:
            key = str(loc[0])
        else:
            key = "form"
        message = str(detail.get("message", "")).removeprefix("Value error, ")
        errors.setdefault(key, []).append(message)
    return errors
