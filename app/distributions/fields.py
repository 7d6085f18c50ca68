# ruff: noqa: E501  -- a table reads best one row per line
"""The catalogue of mappable Voucherify fields served by GET /api/v1/fields.

Paths are read from the event's `data`, except that `voucher` is the voucher wherever the event
carries it (data.voucher, data.vouchers[0], data.publication.voucher, data.reward.voucher, or
the code we published) and `webhook` is the whole envelope.
"""

from __future__ import annotations

import difflib

from app.distributions.schemas import FieldInfo

_VOUCHER_EVENTS = "events that carry a voucher (publication, redemption, gift, loyalty, +code)"
_ALL = "all events"

FIELDS: tuple[FieldInfo, ...] = tuple(
    FieldInfo(source=s, description=d, example=e, suggested_format=f, events=ev)
    for s, d, e, f, ev in (
        ("voucher.code", "The voucher code (mandatory in every set distribution)", "WELCOME-7QX2KD", "string", _VOUCHER_EVENTS),
        ("voucher.expiration_date", "When the code expires (null: never)", "2026-12-31T22:59:59.000Z", "iso_datetime", _VOUCHER_EVENTS),
        ("voucher.start_date", "From when the code is valid", "2026-03-10T00:00:00.000Z", "iso_datetime", _VOUCHER_EVENTS),
        ("voucher.campaign", "Campaign name of the voucher", "Welcome 10% Off", "string", _VOUCHER_EVENTS),
        ("voucher.campaign_id", "Campaign id of the voucher", "camp_Rt5Yh2Nq8Lp4Vx7Kc1Mz3Bw6", "string", _VOUCHER_EVENTS),
        ("voucher.type", "DISCOUNT_VOUCHER, GIFT_VOUCHER or LOYALTY_CARD", "DISCOUNT_VOUCHER", "string", _VOUCHER_EVENTS),
        ("voucher.id", "Voucherify voucher id", "v_3Jk8Pq1Rz5Tw9Xm2Lb7Nc4Vd6Hf0Gs", "string", _VOUCHER_EVENTS),
        ("voucher.discount.percent_off", "Percent discount of the code", 10, "integer", _VOUCHER_EVENTS),
        ("voucher.discount.amount_off", "Amount discount, minor units", 1500, "minor_units_to_decimal", _VOUCHER_EVENTS),
        ("voucher.gift.amount", "Gift card initial amount, minor units", 5000, "minor_units_to_decimal", "gift card events"),
        ("voucher.gift.balance", "Gift card balance, minor units", 3500, "minor_units_to_decimal", "gift card events"),
        ("voucher.loyalty_card.points", "Loyalty points earned in total", 1250, "integer", "loyalty events"),
        ("voucher.loyalty_card.balance", "Loyalty points balance", 800, "integer", "loyalty events"),
        ("balance.amount", "Gift credits added by this event, minor units", 2500, "minor_units_to_decimal", "*.gift.balance_added"),
        ("balance.balance", "Gift card balance after this event, minor units", 6200, "minor_units_to_decimal", "*.gift.balance_added"),
        ("balance.points", "Loyalty points added by this event", 45, "integer", "*.points_added"),
        ("balance.balance", "Loyalty points balance after this event", 1040, "integer", "*.points_added"),
        ("voucher.metadata.<key>", "Any voucher metadata value", "spring-2026", "raw", _VOUCHER_EVENTS),
        ("voucher.assets.qr.url", "URL of the code's QR image", "https://dl.voucherify.io/api/v1/assets/qr/abc", "string", "events with a full voucher"),
        ("voucher.assets.barcode.url", "URL of the code's barcode image", "https://dl.voucherify.io/api/v1/assets/barcode/abc", "string", "events with a full voucher"),
        ("publication.id", "Publication id (pub_...)", "pub_9Hs2Kd8Lq4Xw1Zm7", "string", "publication and +code events"),
        ("publication.source_id", "The publication's source_id", "distr_welcome-braze-usr-10042", "string", "publication and +code events"),
        ("campaign.name", "Campaign name", "Welcome 10% Off", "string", "events with a campaign"),
        ("campaign.id", "Campaign id", "camp_Rt5Yh2Nq8Lp4Vx7Kc1Mz3Bw6", "string", "events with a campaign"),
        ("promotion_tier.name", "Promotion tier name (notify-about-promotion distributions)", "Spring 15% off", "string", "+promo events"),
        ("promotion_tier.id", "Promotion tier id", "promo_8Gk2Vb6Nq1", "string", "+promo events"),
        ("customer.id", "Voucherify customer id", "cust_8fN2kQ4rT6vX1zB3mP5sL7wY", "string", "customer events"),
        ("customer.source_id", "Your customer id in Voucherify; the Braze external_id by default", "braze-usr-10042", "string", "customer events"),
        ("customer.email", "Customer email", "mia.schneider@example.com", "string", "customer events"),
        ("customer.name", "Customer name", "Mia Schneider", "string", "customer events"),
        ("customer.metadata.<key>", "Any customer metadata value", True, "raw", "customer events"),
        ("holder.id", "Voucherify id of the voucher's holder", "cust_8fN2kQ4rT6vX1zB3mP5sL7wY", "string", "redemption events"),
        ("holder.source_id", "The holder's source_id (identity path holder.source_id: the holder gets it)", "braze-usr-10042", "string", "redemption events"),
        ("holder.email", "The holder's email", "mia.schneider@example.com", "string", "redemption events"),
        ("holder.metadata.<key>", "Any metadata value of the holder", "DE", "raw", "redemption events"),
        ("referrer.id", "Voucherify id of the customer who referred this one", "cust_2bQ7xW9kL4mN1pR6sT3vY8zA", "string", "events of referred customers"),
        ("referrer.source_id", "The referrer's source_id (identity path referrer.source_id: the referrer gets it)", "braze-usr-10007", "string", "events of referred customers"),
        ("referrer.email", "The referrer's email", "jonas.weber@example.com", "string", "events of referred customers"),
        ("customer.loyalty.points", "Customer's loyalty points", 800, "integer", "customer events"),
        ("order.id", "Order id", "ord_5Xq1Wc9Lm3", "string", "customer.order.*"),
        ("order.source_id", "Your order id", "ORDER-2026-0042", "string", "customer.order.*"),
        ("order.status", "CREATED, PAID, CANCELED or FULFILLED", "PAID", "string", "customer.order.*"),
        ("order.amount", "Order amount, minor units", 4999, "minor_units_to_decimal", "customer.order.*"),
        ("order.total_amount", "Order total after discounts, minor units", 4499, "minor_units_to_decimal", "customer.order.*"),
        ("order.metadata.<key>", "Any order metadata value", "web-de", "raw", "customer.order.*"),
        ("segment.name", "Segment name", "New members DE", "string", "customer.segment.*"),
        ("segment.id", "Segment id", "seg_Vq7Lm2Rt9Kx4Nb1Zc8Hs3Pw", "string", "customer.segment.*"),
        ("redemption.id", "Redemption id (r_...)", "r_0bc1e44b", "string", "redemption events"),
        ("reward.name", "Reward name", "Free shipping", "string", "reward events"),
        ("event.type", "Custom event name", "cart_abandoned", "string", "customer.custom_event"),
        ("event.metadata.<key>", "Any metadata value of the custom event", "cart-77120", "raw", "customer.custom_event"),
        ("webhook.event.type", "Voucherify event type", "customer.segment.entered", "string", _ALL),
        ("webhook.event.created_at", "When the event happened", "2026-03-10T09:00:01.204Z", "iso_datetime", _ALL),
        ("webhook.project_id", "Voucherify project id", "proj_Hq4T2bWm", "string", _ALL),
        ("webhook.type", "Distribution webhooks: the event name typed in Voucherify", "braze-welcome-code", "string", _ALL),
        ("webhook.<path>", "Any part of the envelope, e.g. webhook.data.order.items[0].product.name for a field not listed here", "Cold Brew Bottle 500ml", "raw", _ALL),
    )
)  # fmt: skip

NOTES = [
    "Paths are read from the event's data object: customer.source_id is data.customer.source_id.",
    "voucher.* is the voucher wherever the event carries it: data.voucher, data.vouchers[0], "
    "data.publication.voucher, data.reward.voucher, or the code voucher-relay published.",
    "webhook.* reads the envelope (event type, project id, the distribution's event name); "
    "webhook.data.<path> reads any part of the event, for a field this list does not name.",
    "A source must be a field of this list; under an entry ending in <key> or <path> any path "
    "is accepted (customer.metadata.tier, webhook.data.order.items[0].quantity).",
    "A field the event does not carry is left out of the Braze object; a null is sent as null.",
    "Money is in minor units (1000 = 10.00): use format minor_units_to_decimal to send 10.0.",
]

# An entry ending in one of these is open: its prefix, and any path below it, is a field.
_OPEN = (".<key>", ".<path>")
KNOWN_SOURCES = frozenset(f.source for f in FIELDS if not f.source.endswith(_OPEN))
OPEN_PREFIXES = tuple(f.source.rsplit(".", 1)[0] for f in FIELDS if f.source.endswith(_OPEN))


def unknown_source(path: str) -> str | None:
    """Why `path` (well formed) names no field of the catalogue, with the closest one; None
    when it does. A typo (customer.nmae) would otherwise leave the attribute out of every
    delivery without a word."""
    if path in KNOWN_SOURCES or any(
        path == prefix or path.startswith((f"{prefix}.", f"{prefix}[")) for prefix in OPEN_PREFIXES
    ):
        return None
    close = difflib.get_close_matches(path, sorted({f.source for f in FIELDS}), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return (
        f"{path!r} is not a known field: {hint}see GET /api/v1/fields "
        "(webhook.data.<path> reads any part of the event) [unknown_source]"
    )
