from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.distributions import files, repository, service
from app.distributions.schemas import DistributionConfig
from app.errors import FileProblems
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
    report = await files.import_checked(session=session, checked=files.check([path]))
    assert sorted(report.created) == ["order-paid", "welcome-code"]

    assert await files.export_text(session=session, fmt=suffix.lstrip(".")) == exported


async def test_importing_the_same_file_twice_changes_nothing(
    session: AsyncSession, tmp_path: Path
) -> None:
    await seed(session)
    path = tmp_path / "d.yaml"
    path.write_text(await files.export_text(session=session, fmt="yaml"))
    versions = {d.name: d.version for d in await repository.list_all(session)}

    report = await files.import_checked(session=session, checked=files.check([path]))
    assert sorted(report.unchanged) == ["order-paid", "welcome-code"]
    assert report.created == [] and report.updated == []
    assert {d.name: d.version for d in await repository.list_all(session)} == versions


async def test_import_updates_by_name(session: AsyncSession, tmp_path: Path) -> None:
    await seed(session)
    changed = distribution_body(mapping=[{"source": "voucher.code", "attribute": "code_v2"}])
    path = tmp_path / "d.json"
    path.write_text(files.dump({"distributions": [changed]}, fmt="json"))

    report = await files.import_checked(session=session, checked=files.check([path]))
    assert report.updated == ["welcome-code"]
    stored = await repository.get_live_by_name(session, "welcome-code")
    assert stored is not None and stored.version == 2
    assert stored.mapping == [{"source": "voucher.code", "attribute": "code_v2", "format": "raw"}]


def _problems(*paths: Path) -> list[str]:
    with pytest.raises(FileProblems) as raised:
        files.check(paths)
    return raised.value.problems


def test_each_invalid_field_is_one_line_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text(
        "distributions:\n  - name: broken\n    triggers: [customer.segment.entered]\n"
        "    mapping:\n      - {source: voucher.code, attribute: code}\n"
        "      - {source: 'customer..name', attribute: name}\n"
        "      - {source: customer.email, attribute: email_2, formt: string}\n"
    )
    assert _problems(path) == [
        f"{path}: broken: mapping[1].source: 'customer..name' is not a source path: use dotted "
        "names with optional [index], e.g. voucher.code or vouchers[0].gift.balance",
        f"{path}: broken: mapping[2].formt: unknown field",
    ]


def test_a_missing_file_is_one_clear_problem(tmp_path: Path) -> None:
    assert _problems(tmp_path / "nope.yaml") == [
        f"{tmp_path / 'nope.yaml'}: no such file or folder"
    ]


def test_unparsable_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text("{not json")
    [problem] = _problems(path)
    assert problem.startswith(f"{path}: not valid json: ")


def test_a_folder_holds_one_distribution_per_file(tmp_path: Path) -> None:
    for name in ("b-second", "a-first"):
        (tmp_path / f"{name}.yaml").write_text(files.dump(distribution_body(name=name), fmt="yaml"))
    (tmp_path / "README.md").write_text("not a distribution")
    assert [c.name for c in files.check([tmp_path]).configs] == ["a-first", "b-second"]


def test_the_same_name_in_two_files_is_a_problem(tmp_path: Path) -> None:
    for file in ("one.yaml", "two.json"):
        (tmp_path / file).write_text(files.dump(distribution_body(), fmt="json"))
    assert _problems(tmp_path) == [
        f"{tmp_path / 'two.json'}: welcome-code: also in {tmp_path / 'one.yaml'}"
    ]


async def test_prune_deletes_what_the_files_no_longer_name(
    session: AsyncSession, tmp_path: Path
) -> None:
    await seed(session)
    path = tmp_path / "welcome-code.yaml"
    path.write_text(files.dump(distribution_body(), fmt="yaml"))

    kept = await files.import_checked(session=session, checked=files.check([path]))
    assert kept.deleted == [] and len(await repository.list_all(session)) == 2
    pruned = await files.import_checked(session=session, checked=files.check([path]), prune=True)
    assert pruned.deleted == ["order-paid"] and pruned.unchanged == ["welcome-code"]
    assert [d.name for d in await repository.list_all(session)] == ["welcome-code"]
