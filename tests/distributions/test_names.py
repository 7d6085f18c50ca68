"""Attribute names that Braze or the generated Liquid cannot read are refused with a 422 naming
the rule, on create, replace, patch and import; for every name the API accepts, GET /liquid is
Liquid that reads back exactly that attribute."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.config import Settings
from app.distributions import files
from app.errors import FileProblems
from tests.conftest import WRITE_TOKEN, WRITER, committing_app_client
from tests.distributions.liquid_reader import ATTRIBUTE, read
from tests.factories import distribution_body

BASE = "/api/v1/distributions"
REFUSED = [
    ("welcome_code}}", "liquid_brace"),
    ("{{welcome_code", "liquid_brace"),
    ("welcome{%code", "liquid_brace"),
    ("welcome%}code", "liquid_brace"),
    ("welcome}code", "liquid_brace"),
    ("welcome\ncode", "control_character"),
    ("welcome\r\ncode", "control_character"),
    ("welcome\tcode", "control_character"),
    ("welcome\u2028code", "control_character"),
    ("welcome.code", "nested_dot"),
    ("$welcome_code", "leading_dollar"),
    ("w" * 256, "too_long"),
    (" welcome_code", "edge_spaces"),
    ("email", "braze_profile_field"),
]


def _with_code_as(attribute: str) -> list[dict[str, str]]:
    return [{"source": "voucher.code", "attribute": attribute}]


def _rule_named(response: httpx.Response, rule: str) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == "validation_error", error
    detail: dict[str, Any] = next(
        d for d in error["details"] if d["loc"][-3:] == ["mapping", 0, "attribute"]
    )
    assert f"[{rule}]" in detail["message"], detail
    return detail


@pytest.mark.parametrize(("attribute", "rule"), REFUSED)
async def test_an_attribute_name_braze_or_liquid_cannot_read_gets_422_naming_the_rule(
    client: httpx.AsyncClient, attribute: str, rule: str
) -> None:
    body = distribution_body(mapping=_with_code_as(attribute))
    _rule_named(await client.post(BASE, json=body, headers=WRITER), rule)
    created = await client.post(BASE, json=distribution_body(), headers=WRITER)
    url = f"{BASE}/{created.json()['id']}"
    _rule_named(await client.put(url, json=body, headers=WRITER), rule)
    patched = await client.patch(url, json={"mapping": body["mapping"]}, headers=WRITER)
    _rule_named(patched, rule)
    assert (await client.get(url, headers=WRITER)).json()["version"] == 1


@pytest.mark.parametrize(("attribute", "rule"), REFUSED[:6])
async def test_an_import_naming_such_an_attribute_is_refused_naming_the_rule(
    session: AsyncSession, tmp_path: Path, attribute: str, rule: str
) -> None:
    path = tmp_path / "distributions.yaml"
    path.write_text(yaml.safe_dump([distribution_body(mapping=_with_code_as(attribute))]))
    with pytest.raises(FileProblems) as refused:
        await files.import_checked(session=session, checked=files.check([path]))
    [problem] = refused.value.problems
    assert problem.startswith(f"{path}: welcome-code: mapping[0].attribute: "), problem
    assert problem.endswith(f"[{rule}]"), problem


# Names the API may or may not accept: every character, and the ones Liquid and Braze treat
# specially, more often than chance would draw them.
names = st.text(st.characters() | st.sampled_from("{}%$.'\"|-\n\r\t "), min_size=1, max_size=40)


@pytest.fixture(scope="module")
async def committing(engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(_env_file=None, ops_api_tokens=f"ops:write:{WRITE_TOKEN}")
    async with committing_app_client(settings, engine) as client:
        yield client


@given(attribute=names, date=st.booleans())
async def test_liquid_reads_back_every_attribute_name_the_api_accepts(
    committing: httpx.AsyncClient, attribute: str, date: bool
) -> None:
    item = {"source": "voucher.code", "attribute": attribute}
    if date:
        item.update(source="voucher.expiration_date", format="iso_datetime")
    mapping = [item] if not date else [*_with_code_as("code"), item]
    body = distribution_body(name=f"n-{uuid.uuid4().hex}", mapping=mapping)
    created = await committing.post(BASE, json=body, headers=WRITER)
    if created.status_code == 422:
        assert re.search(r"\[[a-z_]+\]", str(created.json()["error"]["details"])), created.text
        return
    assert created.status_code == 201, created.text
    answer = await committing.get(f"{BASE}/{created.json()['id']}/liquid", headers=WRITER)
    assert answer.status_code == 200, answer.text
    snippet = next(s for s in answer.json()["snippets"] if s["attribute"] == attribute)
    for key, tokens in (("tag", 1), ("with_default", 1), ("abort_when_blank", 3)):
        reading = read(snippet[key])
        assert reading.stray == [], (key, snippet[key], reading)
        assert reading.attributes == [(attribute,)], (key, snippet[key], reading)
        assert len(reading.tokens) == tokens, (key, reading)
        assert reading.tokens[0].startswith(("{{custom_attribute." + ATTRIBUTE, "{% if {{"))
    if_tag, abort, endif = read(snippet["abort_when_blank"]).tokens
    assert if_tag == "{% if {{custom_attribute." + ATTRIBUTE + "}} == blank %}"
    assert re.fullmatch(r"\{% abort_message\('[^']*'\) %\}", abort), abort
    assert endif == "{% endif %}"
