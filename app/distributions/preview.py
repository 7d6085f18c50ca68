"""Preview (an event in, the exact Braze object out) and the Liquid snippets for marketers."""

from __future__ import annotations

import uuid
from typing import Any

from app.distributions import mapping
from app.distributions.schemas import (
    DistributionConfig,
    LiquidSnippet,
    LiquidSnippets,
    PreviewResult,
)
from app.webhooks import envelope as envelope_parser
from app.webhooks.intake import NotAnEnvelopeError

_DEFAULTS = {"integer": "0", "minor_units_to_decimal": "0", "boolean": "false"}


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
    snippets = []
    for item in config.mapping:
        tag = f"{{{{custom_attribute.${{{item.attribute}}}}}}}"
        default = _DEFAULTS.get(item.format, "'FALLBACK'")
        snippets.append(
            LiquidSnippet(
                attribute=item.attribute,
                source=item.source,
                tag=tag,
                with_default=f"{{{{custom_attribute.${{{item.attribute}}} | default: {default}}}}}",
                abort_when_blank=(
                    f"{{% if {tag} == blank %}}"
                    f"{{% abort_message('no {item.attribute}') %}}{{% endif %}}"
                ),
            )
        )
    return LiquidSnippets(distribution_id=distribution_id, snippets=snippets)
