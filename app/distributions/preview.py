"""Preview (an event in, the exact Braze object out) and the Liquid snippets for marketers."""

from __future__ import annotations

import uuid
from typing import Any

from app.distributions import envelope as envelope_parser
from app.distributions import mapping
from app.distributions.envelope import NotAnEnvelopeError
from app.distributions.names import LIQUID_RULES, broken_rule, describe
from app.distributions.schemas import (
    DistributionConfig,
    LiquidSnippet,
    LiquidSnippets,
    PreviewResult,
)
from app.errors import ConflictError

_DEFAULTS = {"integer": "0", "minor_units_to_decimal": "0", "boolean": "false"}
# Braze keeps dates as timestamps and prints them raw (2016-09-07 08:43:50 UTC) unless a
# `date` filter formats them.
_DATE_FORMATS = {"iso_datetime": "%B %-d, %Y", "date": "%B %-d, %Y"}


def check_envelope(body: dict[str, Any]) -> dict[str, Any]:
    """The body, if the webhook intake would take it; else the intake's 400, saying why."""
    try:
        return envelope_parser.from_body(body).body
    except envelope_parser.EnvelopeError as exc:
        raise NotAnEnvelopeError(str(exc)) from None


def preview(*, config: DistributionConfig, envelope: dict[str, Any]) -> PreviewResult:
    result = mapping.resolve(envelope=envelope, config=config)
    if isinstance(result, mapping.Send):
        return PreviewResult(
            outcome="send",
            braze_user_key=result.braze_user_key,
            object=result.attributes,
            request_body={"attributes": [result.attributes]},
        )
    if isinstance(result, mapping.NeedsCustomer):
        return PreviewResult(
            outcome="needs_customer",
            detail=f"the event names its customer only by id ({result.customer_id}): it is "
            "looked up in Voucherify when the delivery runs",
        )
    if isinstance(result, mapping.NeedsPublish):
        return PreviewResult(
            outcome="needs_publish",
            braze_user_key=result.braze_user_key,
            detail=f"no code in the event: one is published from campaign {result.campaign!r} "
            "when the delivery runs",
        )
    return PreviewResult(
        outcome="skip",
        reason=result.reason,
        detail=result.detail,
        braze_user_key=result.braze_user_key,
    )


def liquid(*, distribution_id: uuid.UUID, config: DistributionConfig) -> LiquidSnippets:
    """A snippet of each mapped attribute; 409 when a name stored before the Liquid rules
    cannot be read in Liquid (no snippet rather than one that breaks the message)."""
    snippets = []
    for item in config.mapping:
        if (rule := broken_rule(item.attribute, LIQUID_RULES)) is not None:
            raise ConflictError(
                f"{describe(item.attribute, rule)}: no Liquid can read it; rename the attribute "
                "(PATCH the mapping) and send the events again, or read it in Braze by other means"
            )
        tag = f"{{{{custom_attribute.${{{item.attribute}}}}}}}"
        default = _DEFAULTS.get(item.format, "'FALLBACK'")
        filters = ""
        if (date_format := _DATE_FORMATS.get(item.format)) is not None:
            filters = f" | date: '{date_format}'"
        # A quote in the attribute's name would end the message's string early.
        message = f"no {item.attribute}".replace("'", "")
        snippets.append(
            LiquidSnippet(
                attribute=item.attribute,
                source=item.source,
                tag=tag,
                with_default=(
                    f"{{{{custom_attribute.${{{item.attribute}}}{filters} | default: {default}}}}}"
                ),
                abort_when_blank=(
                    f"{{% if {tag} == blank %}}{{% abort_message('{message}') %}}{{% endif %}}"
                ),
            )
        )
    return LiquidSnippets(distribution_id=distribution_id, snippets=snippets)
