"""Distribution use cases: create, update (versioned), pause/resume, soft delete, import/export."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.delivery.store.queue_change import HOLD, RELEASE, SKIP
from app.distributions import repository, rules
from app.distributions.models import Distribution
from app.distributions.schemas import DistributionConfig, DistributionPatch, DistributionRead
from app.errors import ConflictError, NotFoundError, VoucherRelayError

logger = logging.getLogger(__name__)


class InvalidDistributionError(VoucherRelayError):
    status_code = 422
    code = "validation_error"


CONFIG_FIELDS = tuple(DistributionConfig.model_fields)


def to_config(distribution: Distribution) -> DistributionConfig:
    """The validated configuration of a stored distribution (what the mapping engine reads)."""
    return DistributionConfig.model_validate(
        {name: getattr(distribution, name) for name in CONFIG_FIELDS}
    )


def _columns(config: DistributionConfig) -> dict[str, Any]:
    return config.model_dump(mode="json")


def check_new(config: DistributionConfig, *, stored: DistributionConfig | None = None) -> None:
    """422 naming each rule of rules.py that `config` breaks (`stored`: the version it replaces)."""
    if found := rules.problems(config, stored=stored):
        raise InvalidDistributionError("the distribution is invalid", details=found)


async def create(*, session: AsyncSession, config: DistributionConfig) -> Distribution:
    check_new(config)
    distribution = Distribution(**_columns(config), version=1)
    session.add(distribution)
    await _flush_unique_name(session, config.name)
    await session.refresh(distribution)
    return distribution


async def get_or_404(*, session: AsyncSession, distribution_id: uuid.UUID) -> Distribution:
    distribution = await repository.get(session, distribution_id)
    if distribution is None:
        raise NotFoundError(f"no distribution {distribution_id}")
    return distribution


async def replace(
    *, session: AsyncSession, distribution_id: uuid.UUID, config: DistributionConfig
) -> Distribution:
    distribution = await _live_or_error(session, distribution_id)
    check_new(config, stored=to_config(distribution))
    return await _apply(session, distribution, config)


async def patch(
    *, session: AsyncSession, distribution_id: uuid.UUID, changes: DistributionPatch
) -> Distribution:
    distribution = await _live_or_error(session, distribution_id)
    stored = to_config(distribution)
    merged = stored.model_dump(mode="json")
    merged.update(changes.model_dump(mode="json", include=changes.model_fields_set))
    try:
        config = DistributionConfig.model_validate(merged)
    except ValidationError as exc:
        details = [
            {"loc": list(e["loc"]), "message": e["msg"], "type": e["type"]} for e in exc.errors()
        ]
        raise InvalidDistributionError(
            "the updated distribution is invalid", details=details
        ) from None
    check_new(config, stored=stored)
    return await _apply(session, distribution, config)


async def set_status(
    *, session: AsyncSession, distribution_id: uuid.UUID, status: str
) -> Distribution:
    distribution = await _live_or_error(session, distribution_id)
    config = to_config(distribution).model_copy(update={"status": status})
    return await _apply(session, distribution, config)


async def soft_delete(*, session: AsyncSession, distribution_id: uuid.UUID) -> Distribution:
    """Hide from intake and listings; the row and its deliveries stay readable. What a paused
    one held is skipped (`distribution_deleted`): nothing could resume it any more."""
    distribution = await _live_or_error(session, distribution_id)
    distribution.deleted_at = datetime.now(UTC)
    distribution.version += 1
    if distribution.status == "paused":
        _mark_queue_change(distribution, SKIP)
        logger.info(
            "distribution %s deleted: its held deliveries are being skipped", distribution.id
        )
    await session.flush()
    await session.refresh(distribution)
    return distribution


async def _live_or_error(session: AsyncSession, distribution_id: uuid.UUID) -> Distribution:
    # Locked: a pause and a delete (or two edits) at once see each other's outcome.
    distribution = await session.get(
        Distribution, distribution_id, with_for_update=True, populate_existing=True
    )
    if distribution is None:
        raise NotFoundError(f"no distribution {distribution_id}")
    if distribution.deleted_at is not None:
        raise ConflictError(f"distribution {distribution_id} is deleted; create a new one")
    return distribution


async def _apply(
    session: AsyncSession, distribution: Distribution, config: DistributionConfig
) -> Distribution:
    """Store `config`; the version goes up only when something actually changed."""
    if to_config(distribution) == config:
        return distribution
    was = distribution.status
    for name, value in _columns(config).items():
        setattr(distribution, name, value)
    distribution.version += 1
    await _flush_unique_name(session, config.name)
    # Pausing holds what is queued (nothing more goes to Braze); resuming sends it. Both in
    # batches after the answer (app/delivery/store/queue_change.py): the claims skip a paused
    # distribution's deliveries from this commit on.
    if config.status == "paused" and was != "paused":
        _mark_queue_change(distribution, HOLD)
        logger.info("distribution %s paused: its queued deliveries are being held", distribution.id)
    elif was == "paused" and config.status != "paused":
        _mark_queue_change(distribution, RELEASE)
        logger.info(
            "distribution %s resumed: its held deliveries are being released", distribution.id
        )
    await session.flush()
    await session.refresh(distribution)
    return distribution


def _mark_queue_change(distribution: Distribution, change: str) -> None:
    distribution.queue_change = change
    distribution.queue_changed = 0


async def _flush_unique_name(session: AsyncSession, name: str) -> None:
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        if "uq_distributions_live_name" in str(exc.orig):
            raise ConflictError(f"a distribution named {name!r} already exists") from None
        raise


# -- export / import (configuration kept in git) ---------------------------------------------


def export_document(distributions: list[Distribution]) -> dict[str, Any]:
    """Every live distribution's configuration, without ids and timestamps, sorted by name."""
    items = [to_config(d).model_dump(mode="json") for d in distributions if d.deleted_at is None]
    return {"distributions": sorted(items, key=lambda item: item["name"])}


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


async def import_configs(
    *, session: AsyncSession, configs: list[DistributionConfig], prune: bool = False
) -> ImportReport:
    """Upsert by name. Importing the same file twice changes nothing the second time. With
    `prune`, the live distributions `configs` does not name are deleted (soft, as the API does):
    the files are the whole truth."""
    report = ImportReport()
    if prune:
        named = {config.name for config in configs}
        for distribution in await repository.list_all(session):
            if distribution.name not in named:
                await soft_delete(session=session, distribution_id=distribution.id)
                report.deleted.append(distribution.name)
    for config in configs:
        existing = await repository.get_live_by_name(session, config.name)
        if existing is None:
            await create(session=session, config=config)
            report.created.append(config.name)
        elif to_config(existing) == config:
            report.unchanged.append(config.name)
        else:
            await _apply(session, existing, config)
            report.updated.append(config.name)
    return report


def read_model(distribution: Distribution) -> DistributionRead:
    return DistributionRead.model_validate(distribution)
