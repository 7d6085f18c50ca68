"""The mapping engine: one Voucherify event + one distribution -> a Braze attributes object,
a reason to skip, or "publish a code first". Pure: no I/O, no clock, no database."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.braze.payload import value_problems
from app.db.nul import contains_nul
from app.distributions import formats
from app.distributions.paths import MISSING, lookup
from app.distributions.schemas import DistributionConfig, Identity

MAX_STRING_LENGTH = 255  # Braze string attribute values
# Braze refuses longer external ids (EXTERNAL_USER_ID_TOO_LARGE). It documents no limit for
# alias names, emails or braze ids; no real one is longer, and the key made of it is indexed
# (attribute_state, deliveries), which takes no value of any length: the same bound for all.
MAX_IDENTIFIER_BYTES = 987

# Why a delivery is not sent. Stored on the delivery and counted in metrics.
FILTERED_OUT = "filtered_out"
NO_IDENTIFIER = "no_identifier"
NO_CONSENT = "no_consent"
NO_CODE = "no_code"
VALUE_TOO_LONG = "value_too_long"
INVALID_VALUE = "invalid_value"
SKIP_REASONS = (FILTERED_OUT, NO_IDENTIFIER, NO_CONSENT, NO_CODE, VALUE_TOO_LONG, INVALID_VALUE)

# Where events carry "the voucher", in order of preference (reference 1.4).
VOUCHER_LOCATIONS: tuple[tuple[str | int, ...], ...] = (
    ("voucher",),
    ("vouchers", 0),
    ("publication", "voucher"),
    ("reward", "voucher"),
)
# Reward events carry the loyalty card in data.voucher; the code they hand out is the reward's
# (a CAMPAIGN reward). A material or points reward hands out none: the card's code is not it.
REWARD_EVENTS = frozenset({"customer.rewarded", "customer.reward_redemptions.completed"})
REWARD_ONLY = (("reward", "voucher"),)


@dataclass(frozen=True)
class Send:
    """Send `attributes` (a complete Braze attributes object) to the user `braze_user_key`."""

    braze_user_key: str
    attributes: dict[str, Any]
    event_time: datetime | None


@dataclass(frozen=True)
class Skip:
    reason: str
    detail: str
    braze_user_key: str | None = None


@dataclass(frozen=True)
class NeedsPublish:
    """The event carries no code: publish one from `campaign` for `customer`, then resolve again."""

    campaign: str
    braze_user_key: str
    customer: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NeedsCustomer:
    """The event names the customer only by id (project-level gift events: voucher.holder_id):
    look the customer up, put it in `data.customer`, then resolve again."""

    customer_id: str


Resolution = Send | Skip | NeedsPublish | NeedsCustomer


def find_voucher(data: Mapping[str, Any], event_type: str | None = None) -> dict[str, Any] | None:
    """The voucher the event is about, wherever the event type carries it."""
    for location in REWARD_ONLY if event_type in REWARD_EVENTS else VOUCHER_LOCATIONS:
        voucher = lookup(data, location)
        if isinstance(voucher, dict) and voucher.get("code"):
            return voucher
    return None


def event_time(envelope: Mapping[str, Any]) -> datetime | None:
    """When the event happened (event.created_at, else the send-out's created_at)."""
    for value in (lookup(envelope, "event.created_at"), envelope.get("created_at")):
        try:
            return formats.parse_datetime(value)
        except formats.FormatError:
            continue
    return None


def resolve(
    *,
    envelope: Mapping[str, Any],
    config: DistributionConfig,
    voucher: Mapping[str, Any] | None = None,
    occurred_at: datetime | None = None,
) -> Resolution:
    """Map one event through one distribution. A `voucher` given (a published code) wins."""
    event_type = lookup(envelope, "event.type")
    if event_type is MISSING:
        return Skip(FILTERED_OUT, f"the event has no event.type; expected one of {config.triggers}")
    if event_type not in config.triggers:
        return Skip(FILTERED_OUT, f"event type {event_type!r} is not among {config.triggers}")
    data = envelope.get("data") if isinstance(envelope.get("data"), dict) else {}
    assert isinstance(data, dict)
    found_voucher = dict(voucher) if voucher is not None else find_voucher(data, event_type)
    customer = _customer(data)

    if (reason := _filtered_out(config, data, found_voucher)) is not None:
        return Skip(FILTERED_OUT, reason)

    context: dict[str, Any] = {
        **data,
        "voucher": found_voucher if found_voucher is not None else MISSING,
        "customer": customer if customer is not None else MISSING,
        "webhook": envelope,
    }
    identity = _identity(config.identity, context)
    if isinstance(identity, Skip):
        holder = (found_voucher or {}).get("holder_id")
        needs_customer = customer is None and (config.identity.path or "").startswith("customer.")
        if needs_customer and isinstance(holder, str) and holder:
            return NeedsCustomer(holder)
        return identity
    user_key, identifier = identity

    if config.consent is not None and not _consented(config, _recipient(config, context, customer)):
        return Skip(
            NO_CONSENT,
            f"customer.metadata.{config.consent.metadata_key} is not {config.consent.value!r}",
            user_key,
        )

    if config.action == "set" and config.code_source.type == "publish" and voucher is None:
        campaign = config.code_source.campaign
        if not _hands_out(data, event_type, found_voucher, campaign):
            return NeedsPublish(campaign, user_key, dict(customer or {}))
    if config.action == "set" and found_voucher is None:
        return Skip(NO_CODE, "the event carries no voucher code", user_key)

    attributes = _attributes(config, context, user_key)
    if isinstance(attributes, Skip):
        return attributes
    braze_object: dict[str, Any] = {**identifier, **attributes}
    if config.update_existing_only:
        braze_object["_update_existing_only"] = True
    elif config.identity.type == "user_alias":
        # Braze defaults alias-only updates to "update only"; say explicitly that we may create.
        braze_object["_update_existing_only"] = False
    return Send(user_key, braze_object, occurred_at or event_time(envelope))


def _hands_out(
    data: Mapping[str, Any], event_type: str, voucher: Mapping[str, Any] | None, campaign: str
) -> bool:
    """Whether the event itself hands `voucher` out from `campaign`: a code Voucherify just
    published (a "+code" send-out or a publication event, both carrying `publication`) or a
    reward's code. Anything else it carries (a loyalty or gift card, a code just redeemed) is not
    the code a publish distribution sends: publishing one then is the point."""
    if voucher is None or campaign not in (voucher.get("campaign"), voucher.get("campaign_id")):
        return False
    return event_type in REWARD_EVENTS or isinstance(data.get("publication"), dict)


def _customer(data: Mapping[str, Any]) -> dict[str, Any] | None:
    for key in ("customer", "holder"):
        candidate = data.get(key)
        if isinstance(candidate, dict) and (candidate.get("id") or candidate.get("source_id")):
            return candidate
    return None


def _filtered_out(
    config: DistributionConfig, data: Mapping[str, Any], voucher: Mapping[str, Any] | None
) -> str | None:
    filters = config.filters
    if filters.segment_id is not None:
        segment = lookup(data, "segment.id")
        if segment != filters.segment_id:
            shown = None if segment is MISSING else segment
            return f"segment {shown!r} is not {filters.segment_id!r}"
    if filters.campaign is not None:
        names = {lookup(data, "campaign.id"), lookup(data, "campaign.name")}
        if voucher is not None:
            names |= {voucher.get("campaign_id"), voucher.get("campaign")}
        if filters.campaign not in names:
            return f"campaign is not {filters.campaign!r}"
    if filters.custom_event is not None:
        names = {lookup(data, "event.type"), lookup(data, "event_schema.name")}
        if filters.custom_event not in names:
            return f"custom event is not {filters.custom_event!r}"
    return None


def _identity(identity: Identity, context: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | Skip:
    assert identity.path is not None  # filled in by the schema
    value = lookup(context, identity.path)
    if value is MISSING or value is None or (isinstance(value, str) and not value.strip()):
        return Skip(NO_IDENTIFIER, f"{identity.path} is missing: no Braze {identity.type}")
    if isinstance(value, bool) or not isinstance(value, str | int):
        return Skip(NO_IDENTIFIER, f"{identity.path} is not a string: no Braze {identity.type}")
    text = str(value).strip()
    if contains_nul(text):
        # Stripping it would address another Braze user; Postgres cannot store it as it is.
        return Skip(
            NO_IDENTIFIER,
            f"{identity.path} contains the NUL character (\\u0000): no Braze {identity.type}",
        )
    if (size := len(text.encode())) > MAX_IDENTIFIER_BYTES:
        return Skip(
            NO_IDENTIFIER,
            f"{identity.path} is {size} bytes: longer than the {MAX_IDENTIFIER_BYTES} bytes "
            f"Braze takes for an identifier, no Braze {identity.type}",
        )
    if identity.type == "user_alias":
        alias = {"alias_name": text, "alias_label": identity.alias_label}
        return f"user_alias:{identity.alias_label}:{text}", {"user_alias": alias}
    return f"{identity.type}:{text}", {identity.type: text}


def _recipient(
    config: DistributionConfig, context: Mapping[str, Any], customer: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The person whose consent counts: the customer object the identity is read from
    (`holder.source_id` -> the holder, `referrer.email` -> the referrer), else the event's
    customer. Consent checked on anyone else lets attributes reach someone who never gave it."""
    path = config.identity.path or ""
    if "." in path:
        parent = lookup(context, path.rsplit(".", 1)[0])
        if isinstance(parent, dict) and (
            parent.get("object") == "customer"
            or path.rsplit(".", 2)[-2] in ("customer", "holder", "referrer")
        ):
            return parent
    return customer


def _consented(config: DistributionConfig, customer: Mapping[str, Any] | None) -> bool:
    assert config.consent is not None
    metadata = (customer or {}).get("metadata")
    if not isinstance(metadata, dict) or config.consent.metadata_key not in metadata:
        return False
    actual, wanted = metadata[config.consent.metadata_key], config.consent.value
    if isinstance(wanted, bool):
        try:
            return formats.boolean(actual) is wanted
        except formats.FormatError:
            return False
    return str(actual) == str(wanted)


def _attributes(
    config: DistributionConfig, context: Mapping[str, Any], user_key: str
) -> dict[str, Any] | Skip:
    attributes: dict[str, Any] = {}
    for item in config.mapping:
        if config.action == "unset":
            attributes[item.attribute] = None
            continue
        value = lookup(context, item.source)
        if value is MISSING:
            continue  # the event type does not carry this field: leave the attribute alone
        try:
            value = formats.apply_format(item.format, value)
        except formats.FormatError as exc:
            return Skip(INVALID_VALUE, f"{item.attribute} ({item.source}): {exc}", user_key)
        if contains_nul(value):
            return Skip(
                INVALID_VALUE,
                f"{item.attribute} ({item.source}) contains the NUL character (\\u0000)",
                user_key,
            )
        if isinstance(value, str) and len(value) > MAX_STRING_LENGTH:
            return Skip(
                VALUE_TOO_LONG,
                f"{item.attribute} ({item.source}) is {len(value)} characters; Braze keeps 255",
                user_key,
            )
        # An object or array (a `raw` mapping of, say, customer.metadata): Braze silently drops
        # a long string or key anywhere inside it, so refuse it here, visibly.
        if isinstance(value, dict | list) and (
            problems := value_problems(item.attribute, item.attribute, value)
        ):
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            return Skip(VALUE_TOO_LONG, f"{item.attribute} ({item.source}): {problems[0]}{more}",
                        user_key)  # fmt: skip
        attributes[item.attribute] = value
    return attributes
