"""The rules a Braze custom attribute name must meet, each with a name and a reason.

Two groups. BRAZE_RULES are what Braze itself refuses or misreads; the schema checks them on
every read, as it always has. LIQUID_RULES are what the Liquid snippets we generate
(`{{custom_attribute.${name}}}`, reference braze.md 6.1) cannot express; they are checked only
when a distribution is created or changed (app/distributions/rules.py), so that one stored
before they existed keeps delivering.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import NamedTuple

MAX_NAME_LENGTH = 255  # Braze: "custom attribute keys ... a maximum length of 255 characters"

# Braze's built-in profile fields: a custom attribute with one of these names would write the
# profile field instead (reference braze.md 1.4 and the user attributes object).
RESERVED_ATTRIBUTE_NAMES = frozenset(
    {
        "external_id", "user_alias", "braze_id", "email", "phone", "first_name", "last_name",
        "gender", "dob", "country", "home_city", "language", "time_zone", "email_subscribe",
        "push_subscribe", "subscription_groups", "push_tokens", "email_open_tracking_disabled",
        "email_click_tracking_disabled", "facebook", "twitter", "image_url",
        "marked_email_as_spam_at", "date_of_first_session", "date_of_last_session",
        "attribution_data", "current_location",
        "bio", "user_aliases", "custom_attributes", "_update_existing_only", "_merge_objects",
        "phone_numbers", "email_addresses",
    }
)  # fmt: skip

# Cc: ASCII and C1 controls (newline, tab, NUL, ...); Zl, Zp: the Unicode line and paragraph
# separators. Cf (zero-width joiners in emoji, for one) is left alone.
_LINE_BREAKING = frozenset({"Cc", "Zl", "Zp"})


class NameRule(NamedTuple):
    code: str
    breaks: Callable[[str], bool]
    message: str


BRAZE_RULES = (
    NameRule("empty", lambda n: not n.strip(), "must not be empty"),
    NameRule("edge_spaces", lambda n: n != n.strip(), "must not start or end with spaces"),
    NameRule(
        "too_long",
        lambda n: len(n) > MAX_NAME_LENGTH,
        f"must be at most {MAX_NAME_LENGTH} characters (Braze's limit for keys)",
    ),
    NameRule(
        "leading_dollar",
        lambda n: n.startswith("$"),
        "must not start with $ (Braze reads $add, $time, $update ... as operators)",
    ),
    NameRule(
        "braze_profile_field",
        lambda n: n in RESERVED_ATTRIBUTE_NAMES,
        "is a Braze profile field, not a custom attribute",
    ),
)
LIQUID_RULES = (
    NameRule(
        "liquid_brace",
        lambda n: "{" in n or "}" in n,
        "must not hold { or } (Liquid's {{ }} and {% %} tags and Braze's ${...} end there)",
    ),
    NameRule(
        "control_character",
        lambda n: any(unicodedata.category(c) in _LINE_BREAKING for c in n),
        "must not hold a line break or another control character (a Liquid tag is one line)",
    ),
    NameRule(
        "nested_dot",
        lambda n: "." in n,
        "must not hold a dot: in Liquid ${a.b} reads b inside the object attribute a",
    ),
)
ALL_RULES = BRAZE_RULES + LIQUID_RULES


def broken_rule(name: str, rules: tuple[NameRule, ...] = ALL_RULES) -> NameRule | None:
    """The first of `rules` that `name` breaks, or None when it keeps them all."""
    return next((rule for rule in rules if rule.breaks(name)), None)


def describe(name: str, rule: NameRule) -> str:
    shown = name if len(name) <= 60 else name[:57] + "..."
    return f"attribute name {shown!r} {rule.message} [{rule.code}]"
