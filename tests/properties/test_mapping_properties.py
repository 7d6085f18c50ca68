"""Properties of the mapping engine (app/distributions/mapping.py) for generated events and
distributions: it always answers, with one of its documented outcomes, and a Send is what Braze
accepts and what the operator configured."""

from __future__ import annotations

import copy
import math
import re
from typing import Any

from hypothesis import event, given
from hypothesis import strategies as st

from app.braze.payload import validate_attributes_object
from app.distributions.fields import FIELDS
from app.distributions.mapping import (
    MAX_IDENTIFIER_BYTES,
    MAX_STRING_LENGTH,
    SKIP_REASONS,
    NeedsCustomer,
    NeedsPublish,
    Send,
    Skip,
    event_time,
    resolve,
)
from app.distributions.names import BRAZE_RULES, broken_rule
from app.distributions.paths import PATH_PATTERN, lookup
from app.distributions.schemas import CODE_SOURCE_PATH, FORMATS, DistributionConfig
from app.distributions.triggers import KNOWN_TRIGGERS
from tests.factories import sample, sample_names
from tests.properties.strategies import edge_values, envelopes, source_paths

IDENTITY_KEYS = {"external_id", "user_alias", "braze_id", "email"}
CATALOGUE = sorted(f.source for f in FIELDS if PATH_PATTERN.match(f.source))
SUGGESTED = {f.source: f.suggested_format for f in FIELDS}
paths = st.sampled_from(CATALOGUE) | source_paths().map(lambda path: path[0])
attribute_names = st.text(
    "abcdefghijklmnopqrstuvwxyz0123456789_ $.", min_size=1, max_size=30
).filter(lambda name: broken_rule(name, BRAZE_RULES) is None)


def leaf_paths(value: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """Every path to a value inside a JSON document (containers included)."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += leaf_paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += leaf_paths(child, (*prefix, index))
    return found


def fits(container: Any, step: str | int) -> bool:
    if isinstance(container, dict):
        return isinstance(step, str)
    return isinstance(container, list) and isinstance(step, int) and step < len(container)


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    """A real sample webhook with some of its values replaced by odd ones, or a generated one."""
    if draw(st.integers(0, 4)) == 0:
        return draw(envelopes())
    body = sample(draw(st.sampled_from(sample_names())))
    locations = leaf_paths(body["data"])
    for _ in range(draw(st.integers(0, 4))):
        *parents, last = draw(st.sampled_from(locations))
        container = lookup(body["data"], parents)  # may be gone: an earlier change replaced it
        if fits(container, last):
            container[last] = draw(edge_values)
    return body


ONE_IN_TEN = st.sampled_from([False] * 9 + [True])


def rarely(draw: st.DrawFn, strategy: st.SearchStrategy[Any], usual: Any) -> Any:
    """`usual` about nine times in ten, else a draw: most generated distributions fit their
    event. (Hypothesis favours small integers; the first of a sampled_from is its simplest.)"""
    return draw(strategy) if draw(ONE_IN_TEN) else usual


def text_at(envelope: dict[str, Any], path: str) -> str | None:
    value = lookup(envelope, path)
    return value if isinstance(value, str) and value.strip() else None


@st.composite
def distributions(draw: st.DrawFn, envelope: dict[str, Any]) -> DistributionConfig:
    """A valid distribution, usually one that listens to `envelope` and finds what it needs."""
    event_type = lookup(envelope, "event.type")
    triggers = draw(st.lists(st.sampled_from(sorted(KNOWN_TRIGGERS)), max_size=3, unique=True))
    if event_type in KNOWN_TRIGGERS and not draw(ONE_IN_TEN):
        triggers = sorted({event_type, *triggers})
    action = draw(st.sampled_from(["set", "set", "unset"]))
    names = draw(st.lists(attribute_names, min_size=1, max_size=6, unique=True))
    sources = [draw(paths) for _ in names]
    if action == "set":
        sources[draw(st.integers(0, len(names) - 1))] = CODE_SOURCE_PATH
    mapping = [
        {
            "source": source,
            "attribute": name,
            "format": rarely(draw, st.sampled_from(FORMATS), SUGGESTED.get(source, "raw")),
        }
        for source, name in zip(sources, names, strict=True)
    ]
    identity_type = draw(st.sampled_from(sorted(IDENTITY_KEYS)))
    identity: dict[str, Any] = {"type": identity_type}
    identity["path"] = rarely(draw, paths, "customer.source_id")
    if identity_type == "user_alias":
        identity["alias_label"] = draw(st.sampled_from(["voucherify", "crm id"]))
    names_or_none = st.none() | st.text(min_size=1, max_size=12).filter(str.strip)
    consent = st.fixed_dictionaries(
        {
            "metadata_key": st.sampled_from(["braze_opt_in", "newsletter", "x"]),
            "value": st.booleans() | st.text(min_size=1, max_size=5) | st.integers(),
        }
    )
    body = {
        "name": "generated",
        "triggers": triggers or ["voucher.published"],
        "filters": {
            "segment_id": rarely(draw, names_or_none, text_at(envelope, "data.segment.id")),
            "campaign": rarely(draw, names_or_none, None),
            "custom_event": rarely(draw, names_or_none, None),
        },
        "code_source": draw(
            st.just({"type": "event"}) | st.just({"type": "publish", "campaign": "Welcome"})
        ),
        "identity": identity,
        "consent": rarely(draw, st.just({"metadata_key": "braze_opt_in"}) | consent, None),
        "mapping": mapping,
        "action": action,
        "update_existing_only": draw(st.booleans()),
    }  # fmt: skip
    return DistributionConfig.model_validate(body)


@st.composite
def events_and_distributions(draw: st.DrawFn) -> tuple[dict[str, Any], DistributionConfig]:
    envelope = draw(events())
    return envelope, draw(distributions(envelope))


ISO_DATETIME = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"


def assert_respects_format(name: str, value: Any) -> None:
    if value is None:  # the event said null: unset the attribute in Braze
        return
    expected: dict[str, type | tuple[type, ...]] = {
        "string": str, "iso_datetime": str, "date": str, "minor_units_to_decimal": float,
        "integer": int, "boolean": bool,
    }  # fmt: skip
    if name in expected:
        assert isinstance(value, expected[name]), (name, value)
    if name == "integer":
        assert not isinstance(value, bool)
    if name == "iso_datetime":
        assert re.match(ISO_DATETIME, value), value
    if name == "date":
        assert re.match(r"^\d{4}-\d{2}-\d{2}$", value), value
    if isinstance(value, float):
        assert math.isfinite(value), "JSON (and Braze) has no NaN or infinity"
    if isinstance(value, str):
        assert len(value) <= MAX_STRING_LENGTH


@given(case=events_and_distributions())
def test_resolve_always_answers_with_a_documented_outcome(
    case: tuple[dict[str, Any], DistributionConfig],
) -> None:
    envelope, config = case
    untouched = copy.deepcopy(envelope)
    result = resolve(envelope=envelope, config=config)
    assert envelope == untouched, "resolve must not change the event"
    assert resolve(envelope=copy.deepcopy(envelope), config=config) == result  # deterministic
    event(type(result).__name__ + (f" {result.reason}" if isinstance(result, Skip) else ""))

    if isinstance(result, Skip):
        assert result.reason in SKIP_REASONS and result.detail
    elif isinstance(result, NeedsPublish):
        assert config.code_source.type == "publish" and config.action == "set"
        assert result.campaign == config.code_source.campaign and result.braze_user_key
    elif isinstance(result, NeedsCustomer):
        assert result.customer_id
    else:
        assert isinstance(result, Send)
        assert_is_a_valid_braze_object(result, config)
        assert result.event_time == event_time(envelope)


def assert_is_a_valid_braze_object(result: Send, config: DistributionConfig) -> None:
    attributes = result.attributes
    identifiers = IDENTITY_KEYS & attributes.keys()
    assert identifiers == {config.identity.type}, "exactly one identifier, the configured one"
    identifier = attributes[config.identity.type]
    if config.identity.type == "user_alias":
        assert identifier["alias_label"] == config.identity.alias_label
        assert (
            result.braze_user_key
            == f"user_alias:{config.identity.alias_label}:" + (identifier["alias_name"])
        )
        assert len(identifier["alias_name"].encode()) <= MAX_IDENTIFIER_BYTES
    else:
        assert isinstance(identifier, str) and identifier == identifier.strip() and identifier
        assert result.braze_user_key == f"{config.identity.type}:{identifier}"
        assert len(identifier.encode()) <= MAX_IDENTIFIER_BYTES

    flag = attributes.get("_update_existing_only")
    if config.update_existing_only:
        assert flag is True
    else:
        assert flag is (False if config.identity.type == "user_alias" else None)

    configured = {item.attribute: item for item in config.mapping}
    mapped = attributes.keys() - IDENTITY_KEYS - {"_update_existing_only"}
    assert mapped <= configured.keys(), "only configured attribute names are sent"
    if config.action == "unset":
        assert mapped == configured.keys() and all(attributes[n] is None for n in mapped)
    else:
        code_attribute = next(i.attribute for i in config.mapping if i.source == CODE_SOURCE_PATH)
        assert attributes.get(code_attribute) is not None, "a set always carries the code"
        for name in mapped:
            assert_respects_format(configured[name].format, attributes[name])
    assert validate_attributes_object(attributes) == [], "Braze would refuse part of it"


@given(case=events_and_distributions(), code=st.text(min_size=1, max_size=40).filter(str.strip))
def test_a_published_code_always_ends_in_a_send_or_a_reason(
    case: tuple[dict[str, Any], DistributionConfig], code: str
) -> None:
    """The worker resolves again with the code it published: never asks to publish twice."""
    envelope, config = case
    result = resolve(envelope=envelope, config=config, voucher={"code": code})
    assert not isinstance(result, NeedsPublish)
    if isinstance(result, Send) and config.action == "set":
        for item in config.mapping:
            if item.source == CODE_SOURCE_PATH:
                assert result.attributes[item.attribute] is not None
                if item.format in ("raw", "string"):
                    assert result.attributes[item.attribute] == code
