from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.distributions import files, repository, service
from app.distributions.schemas import DistributionConfig
from tests.factories import distribution_body


async def seed(session: AsyncSession) -> None:
    for body in (
        distribution_body(),
        distribution_body(
            name="order-paid",
            triggers=["customer.order.paid", "customer.order.updated"],
            filters={"campaign": "Welcome 10% Off"},
            code_source={"type": "publish", "campaign": "Welcome 10% Off"},
            identity={"type": "user_alias", "alias_label": "voucherify"},
            consent=None,
            update_existing_only=True,
            status="paused",
        ),
    ):
        await service.create(session=session, config=DistributionConfig.model_validate(body))


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
async def test_export_then_import_gives_identical_distributions(
    session: AsyncSession, tmp_path: Path, suffix: str
) -> None:
    await seed(session)
    exported = await files.export_text(session=session, fmt=suffix.lstrip("."))
    path = tmp_path / f"distributions{suffix}"
    path.write_text(exported)

    for distribution in await repository.list_all(session):
        await service.soft_delete(session=session, distribution_id=distribution.id)
    report = await files.import_file(session=session, path=path)
    assert sorted(report.created) == ["order-paid", "welcome-code"]

    assert await files.export_text(session=session, fmt=suffix.lstrip(".")) == exported


async def test_importing_the_same_file_twice_changes_nothing(
    session: AsyncSession, tmp_path: Path
) -> None:
    await seed(session)
    path = tmp_path / "d.yaml"
    path.write_text(await files.export_text(session=session, fmt="yaml"))
    versions = {d.name: d.version for d in await repository.list_all(session)}

    report = await files.import_file(session=session, path=path)
    assert sorted(report.unchanged) == ["order-paid", "welcome-code"]
    assert report.created == [] and report.updated == []
    assert {d.name: d.version for d in await repository.list_all(session)} == versions


async def test_import_updates_by_name(session: AsyncSession, tmp_path: Path) -> None:
    await seed(session)
    changed = distribution_body(mapping=[{"source": "voucher.code", "attribute": "code_v2"}])
    path = tmp_path / "d.json"
    path.write_text(files.dump({"distributions": [changed]}, fmt="json"))

    report = await files.import_file(session=session, path=path)
    assert report.updated == ["welcome-code"]
    stored = await repository.get_live_by_name(session, "welcome-code")
    assert stored is not None and stored.version == 2
    assert stored.mapping == [{"source": "voucher.code", "attribute": "code_v2", "format": "raw"}]


def test_an_invalid_file_names_the_bad_entry(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text("distributions:\n  - name: broken\n    triggers: [nope]\n    mapping: []\n")
    with pytest.raises(ValueError, match=r"distribution #1 \('broken'\) is invalid"):
        service.parse_document(files.load(path))


def test_unparsable_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="is not valid json"):
        files.load(path)
