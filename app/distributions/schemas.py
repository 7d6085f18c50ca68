"""The distribution resource as it crosses the API (DESIGN.md section 2)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from app.distributions.names import BRAZE_RULES, broken_rule, describe
from app.distributions.paths import check_path
from app.distributions.triggers import KNOWN_TRIGGERS

CODE_SOURCE_PATH = "voucher.code"
FORMATS = ("raw", "string", "iso_datetime", "date", "minor_units_to_decimal", "integer", "boolean")
Format = Literal[
    "raw", "string", "iso_datetime", "date", "minor_units_to_decimal", "integer", "boolean"
]

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Identifier = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CodeFromEvent(_Strict):
    type: Literal["event"]


class CodeFromPublication(_Strict):
    type: Literal["publish"]
    campaign: Identifier = Field(description="Voucherify campaign id or name to publish from")


CodeSource = Annotated[CodeFromEvent | CodeFromPublication, Field(discriminator="type")]

IdentityType = Literal["external_id", "user_alias", "braze_id", "email"]
DEFAULT_IDENTITY_PATHS: dict[str, str] = {
    "external_id": "customer.source_id",
    "user_alias": "customer.source_id",
    "braze_id": "customer.metadata.braze_id",
    "email": "customer.email",
}


class Identity(_Strict):
    """Which Braze user gets the attributes, read from the event."""

    type: IdentityType = "external_id"
    path: str | None = Field(default=None, description="source path; default depends on type")
    alias_label: Identifier | None = Field(default=None, description="for type user_alias")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        return None if value is None else check_path(value)

    @model_validator(mode="after")
    def _complete(self) -> Identity:
        if self.type == "user_alias" and not self.alias_label:
            raise ValueError("identity of type user_alias needs alias_label")
        if self.type != "user_alias" and self.alias_label is not None:
            raise ValueError("alias_label is only for identity type user_alias")
        if self.path is None:
            self.path = DEFAULT_IDENTITY_PATHS[self.type]
        return self


class Consent(_Strict):
    """Marketing consent, checked by us: Voucherify's webhooks report consents as disabled."""

    metadata_key: Identifier = Field(description="customer metadata key holding the opt-in")
    value: bool | str | int = Field(default=True, description="the value that means opted in")


class Filters(_Strict):
    segment_id: Identifier | None = Field(default=None, description="only events of this segment")
    campaign: Identifier | None = Field(default=None, description="campaign id or name")
    custom_event: Identifier | None = Field(default=None, description="custom event name")


class MappingItem(_Strict):
    source: str = Field(description="source path, see GET /api/v1/fields")
    attribute: str = Field(description="Braze custom attribute name")
    format: Format = "raw"

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        return check_path(value)

    @field_validator("attribute")
    @classmethod
    def _attribute(cls, value: str) -> str:
        # Braze's own rules only: the Liquid ones apply to new configurations (rules.py).
        if (rule := broken_rule(value, BRAZE_RULES)) is not None:
            raise ValueError(describe(value, rule))
        return value


# Unique, as the validator below checks (app/openapi/document.py lists the known ones).
Triggers = Annotated[
    list[str], Field(min_length=1, max_length=30, json_schema_extra={"uniqueItems": True})
]
Mapping = Annotated[list[MappingItem], Field(min_length=1, max_length=100)]
Description = Annotated[str, Field(max_length=2000)]


class DistributionConfig(_Strict):
    """Everything an operator configures; the mapping engine works from this alone."""

    name: Name
    description: Description | None = None
    triggers: Triggers
    filters: Filters = Field(default_factory=Filters)
    code_source: CodeSource = Field(default_factory=lambda: CodeFromEvent(type="event"))
    identity: Identity = Field(default_factory=Identity)
    consent: Consent | None = None
    mapping: Mapping
    action: Literal["set", "unset"] = "set"
    # Strict: 0 or "yes" is no answer to whether Braze may create a profile.
    update_existing_only: StrictBool = False
    status: Literal["active", "paused"] = "active"

    @field_validator("triggers")
    @classmethod
    def _known_triggers(cls, value: list[str]) -> list[str]:
        unknown = [t for t in value if t not in KNOWN_TRIGGERS]
        if unknown:
            raise ValueError(f"unknown trigger(s) {unknown}; known: {sorted(KNOWN_TRIGGERS)}")
        if len(set(value)) != len(value):
            raise ValueError("triggers must not repeat")
        return value

    @model_validator(mode="after")
    def _mapping_rules(self) -> DistributionConfig:
        names = [item.attribute for item in self.mapping]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"attribute names must be unique; repeated: {repeated}")
        if self.action == "set" and not any(i.source == CODE_SOURCE_PATH for i in self.mapping):
            raise ValueError(
                f'the voucher code must be mapped: add {{"source": "{CODE_SOURCE_PATH}", '
                '"attribute": "..."} to mapping'
            )
        return self


# What null means in a patch: no description, no consent check. The other fields are replaced
# or left out, never null.
NULLABLE_IN_PATCH = frozenset({"description", "consent"})


def _document_not_null(schema: dict[str, Any]) -> None:
    """The patch's OpenAPI says null only where a patch takes it (pydantic writes every optional
    field as nullable)."""
    for name, field in schema["properties"].items():
        if name in NULLABLE_IN_PATCH or "anyOf" not in field:
            continue
        kept = [option for option in field.pop("anyOf") if option != {"type": "null"}]
        field.pop("default", None)
        field.update(kept[0] if len(kept) == 1 else {"anyOf": kept})


class DistributionPatch(_Strict):
    """A partial update: the given fields replace the stored ones, then the whole is validated."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_document_not_null)

    name: Name | None = None
    description: Description | None = None
    triggers: Triggers | None = None
    filters: Filters | None = None
    code_source: CodeSource | None = None
    identity: Identity | None = None
    consent: Consent | None = None
    mapping: Mapping | None = None
    action: Literal["set", "unset"] | None = None
    update_existing_only: StrictBool | None = None
    status: Literal["active", "paused"] | None = None

    @field_validator("*")
    @classmethod
    def _not_null(cls, value: object, info: ValidationInfo) -> object:
        # Runs for the fields a patch gives only (defaults are not validated).
        if value is None and info.field_name not in NULLABLE_IN_PATCH:
            raise ValueError(f"{info.field_name} cannot be null: leave it out to keep it")
        return value


class DistributionRead(DistributionConfig):
    model_config = ConfigDict(extra="ignore", from_attributes=True)

    id: uuid.UUID
    version: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None
    queue_change: Literal["hold", "release", "skip"] | None = Field(
        default=None,
        description="a pause, resume or delete still changing the waiting deliveries, in "
        "batches after the answer: hold (no longer sent), release (due now) or skip (deleted)",
    )
    queue_changed: int = Field(
        default=0, description="waiting deliveries that change (`queue_change`) has changed so far"
    )


class DistributionList(BaseModel):
    items: list[DistributionRead]


class PreviewResult(BaseModel):
    outcome: Literal["send", "skip", "needs_publish", "needs_customer"]
    reason: str | None = None
    detail: str | None = None
    braze_user_key: str | None = None
    object: dict[str, Any] | None = Field(default=None, description="the Braze attributes object")
    request_body: dict[str, Any] | None = Field(
        default=None, description="the /users/track body this object would travel in"
    )


class LiquidSnippet(BaseModel):
    attribute: str
    source: str
    tag: str
    with_default: str
    abort_when_blank: str


class LiquidSnippets(BaseModel):
    distribution_id: uuid.UUID
    snippets: list[LiquidSnippet]


class FieldInfo(BaseModel):
    source: str
    description: str
    example: Any
    suggested_format: Format
    events: str


class FieldCatalogue(BaseModel):
    fields: list[FieldInfo]
    notes: list[str]
