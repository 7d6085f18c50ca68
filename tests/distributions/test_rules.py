"""A mapping source or identity path that names no field of the catalogue is refused with the
closest field suggested; the catalogue's open paths stay free. The rules hold for new and
changed configuration only: a distribution stored before them keeps loading, matching and
delivering, and can still be edited and imported again as it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.distributions import files, rules
from app.distributions.models import Distribution
from app.distributions.schemas import DistributionConfig
from app.errors import FileProblems
from tests.conftest import WRITER
from tests.factories import distribution_body, sample

BASE = "/api/v1/distributions"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "distributions"
CODE = {"source": "voucher.code", "attribute": "code"}


def _refusal(response: httpx.Response, loc: list[Any]) -> str:
    assert response.status_code == 422, response.text
    details = response.json()["error"]["details"]
    message: str = next(d["message"] for d in details if d["loc"][-len(loc) :] == loc)
    return message


@pytest.mark.parametrize(
    ("source", "closest"),
    [
        ("customer.nmae", "customer.name"),
        ("voucher.expiration", "voucher.expiration_date"),
        ("order.ammount", "order.amount"),
        ("customer.metdata.tier", "customer.metadata.<key>"),
        ("vouchers[0].gift.balance", "voucher.gift.balance"),
    ],
)
async def test_a_source_naming_no_known_field_gets_422_suggesting_the_closest(
    client: httpx.AsyncClient, source: str, closest: str
) -> None:
    mapping = [CODE, {"source": source, "attribute": "other"}]
    created = await client.post(BASE, json=distribution_body(mapping=mapping), headers=WRITER)
    message = _refusal(created, ["mapping", 1, "source"])
    assert f"did you mean {closest!r}?" in message and "[unknown_source]" in message
    existing = (await client.post(BASE, json=distribution_body(), headers=WRITER)).json()
    url = f"{BASE}/{existing['id']}"
    for answer in (
        await client.put(url, json=distribution_body(mapping=mapping), headers=WRITER),
        await client.patch(url, json={"mapping": mapping}, headers=WRITER),
    ):
        assert f"did you mean {closest!r}?" in _refusal(answer, ["mapping", 1, "source"])


async def test_an_identity_path_naming_no_known_field_gets_422_suggesting_the_closest(
    client: httpx.AsyncClient,
) -> None:
    body = distribution_body(identity={"type": "external_id", "path": "customer.sorce_id"})
    message = _refusal(await client.post(BASE, json=body, headers=WRITER), ["identity", "path"])
    assert "did you mean 'customer.source_id'?" in message


@pytest.mark.parametrize(
    "source",
    [
        "customer.metadata",
        "customer.metadata.loyalty_tier",
        "order.metadata.store",
        "event.metadata.cart_id",
        "voucher.metadata.season",
        "holder.metadata.country",
        "webhook.data.order.items[0].product.name",
        "webhook.event.id",
    ],
)
async def test_free_paths_the_catalogue_leaves_open_are_accepted(
    client: httpx.AsyncClient, source: str
) -> None:
    body = distribution_body(mapping=[CODE, {"source": source, "attribute": "other"}])
    assert (await client.post(BASE, json=body, headers=WRITER)).status_code == 201


def test_the_example_distributions_keep_every_rule() -> None:
    checked = files.check([EXAMPLES])
    assert len(checked.configs) >= 2, "the examples were found"
    for config in checked.configs:
        assert rules.problems(config) == [], config.name


# Stored by an earlier version: a typo in a source and in the identity path, and attribute
# names the Liquid rules now refuse.
LEGACY = distribution_body(
    name="legacy",
    identity={"type": "external_id", "path": "customer.sorce_id"},
    mapping=[
        CODE,
        {"source": "customer.nmae", "attribute": "name"},
        {"source": "voucher.campaign", "attribute": "campaign}}"},
        {"source": "segment.name", "attribute": "segment.name"},
    ],
)


@pytest.fixture
async def legacy(session: AsyncSession) -> str:
    row = Distribution(**DistributionConfig.model_validate(LEGACY).model_dump(mode="json"))
    session.add(row)
    await session.flush()
    return f"{BASE}/{row.id}"


async def test_a_distribution_stored_before_the_rules_keeps_loading_and_mapping(
    client: httpx.AsyncClient, legacy: str
) -> None:
    shown = await client.get(legacy, headers=WRITER)
    assert shown.status_code == 200 and shown.json()["mapping"][2]["attribute"] == "campaign}}"
    listed = await client.get(BASE, headers=WRITER)
    assert [d["name"] for d in listed.json()["items"]] == ["legacy"]
    event = sample("customer.segment.entered")
    event["data"]["customer"]["sorce_id"] = "u-1"
    previewed = await client.post(f"{legacy}/preview", json=event, headers=WRITER)
    assert previewed.status_code == 200 and previewed.json()["outcome"] == "send", previewed.text
    assert previewed.json()["object"]["segment.name"] == "New members DE"


async def test_a_distribution_stored_before_the_rules_can_be_edited_keeping_what_it_holds(
    client: httpx.AsyncClient, legacy: str
) -> None:
    for action in ("pause", "resume"):
        assert (await client.post(f"{legacy}/{action}", headers=WRITER)).status_code == 200
    renamed = await client.patch(legacy, json={"description": "kept"}, headers=WRITER)
    assert renamed.status_code == 200, renamed.text
    body = {**LEGACY, "description": "kept", "update_existing_only": True}
    assert (await client.put(legacy, json=body, headers=WRITER)).status_code == 200
    changed = [*LEGACY["mapping"][:3], {"source": "segment.name", "attribute": "segment.name2"}]
    refused = await client.patch(legacy, json={"mapping": changed}, headers=WRITER)
    assert "[nested_dot]" in _refusal(refused, ["mapping", 3, "attribute"])


async def test_liquid_of_a_name_stored_before_the_rules_is_409_naming_the_rule(
    client: httpx.AsyncClient, legacy: str
) -> None:
    answer = await client.get(f"{legacy}/liquid", headers=WRITER)
    assert answer.status_code == 409, answer.text
    assert "'campaign}}'" in answer.json()["error"]["message"]
    assert "[liquid_brace]" in answer.json()["error"]["message"]


async def test_an_export_holding_a_distribution_stored_before_the_rules_imports_again(
    session: AsyncSession, legacy: str, tmp_path: Path
) -> None:
    path = tmp_path / "d.yaml"
    path.write_text(await files.export_text(session=session, fmt="yaml"))
    report = await files.import_checked(session=session, checked=files.check([path]))
    assert report.unchanged == ["legacy"]
    path.write_text(path.read_text().replace("name: legacy", "name: legacy-copy"))
    with pytest.raises(FileProblems) as refused:
        await files.import_checked(session=session, checked=files.check([path]))
    assert f"{path}: legacy-copy: mapping[1].source: 'customer.nmae'" in refused.value.problems[0]
