"""The Voucherify event types a distribution can listen to (DESIGN.md section 4)."""

from __future__ import annotations

# Distribution webhooks (event.type) that carry a customer.
CUSTOMER_TRIGGERS = (
    "customer.segment.entered",
    "customer.segment.left",
    "customer.publication.succeeded",
    "customer.order.created",
    "customer.order.updated",
    "customer.order.paid",
    "customer.order.canceled",
    "customer.voucher.gift.balance_added",
    "customer.voucher.loyalty_card.points_added",
    "customer.redemption.succeeded",
    "customer.redemption.rollback.succeeded",
    # "Reward redeemed" is sent as either of these two (reference 1.2): accept both.
    "customer.rewarded",
    "customer.reward_redemptions.completed",
    "customer.custom_event",
)

MANUAL_TRIGGER = "manual_distribution_schedule"

# Project-level webhooks.
PROJECT_TRIGGERS = (
    "publication.succeeded",
    "voucher.published",
    "redemption.succeeded",
    "redemption.rollback.succeeded",
    "voucher.gift.balance_added",
    "voucher.loyalty_card.points_added",
)

KNOWN_TRIGGERS: frozenset[str] = frozenset((*CUSTOMER_TRIGGERS, MANUAL_TRIGGER, *PROJECT_TRIGGERS))


def known_trigger(trigger: str) -> str:
    """`trigger` when it is one of KNOWN_TRIGGERS; ValueError naming them otherwise."""
    if trigger not in KNOWN_TRIGGERS:
        raise ValueError(f"unknown trigger {trigger!r}; known: {sorted(KNOWN_TRIGGERS)}")
    return trigger
