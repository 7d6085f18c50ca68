"""Run use cases for the API: schedule, cancel, resume, and read with progress."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.auth import OpsPrincipal
from app.delivery.store import withdrawal
from app.distributions.models import Distribution
from app.distributions.service import to_config
from app.errors import ConflictError, NotFoundError, VoucherRelayError
from app.runs import repository
from app.runs.envelope import campaign_of, not_runnable
from app.runs.models import CANCELED, FAILED, RUNNING, SCHEDULED, Run
from app.runs.progress import summarize
from app.runs.schemas import Progress, RunCreate, RunDetail, RunSummary

logger = logging.getLogger(__name__)


class NotRunnableError(VoucherRelayError):
    status_code = 422
    code = "distribution_not_runnable"


async def schedule(
    *, session: AsyncSession, distribution_id: uuid.UUID, request: RunCreate,
    principal: OpsPrincipal,
) -> Run:  # fmt: skip
    """A run of the distribution to the audience, due after the requested delay."""
    distribution = await session.get(Distribution, distribution_id)
    if distribution is None or distribution.deleted_at is not None:
        raise NotFoundError(f"no distribution {distribution_id}")
    if distribution.status != "active":
        raise ConflictError(
            f"distribution {distribution_id} is paused: resume it "
            f"(POST /api/v1/distributions/{distribution_id}/resume) before running it"
        )
    config = to_config(distribution)
    reason = not_runnable(config)
    if reason is not None:
        raise NotRunnableError(f"distribution {distribution_id} cannot be run: {reason}")
    assert request.delay_seconds is not None  # the schema fills in the default
    members = request.audience.members()
    run = Run(
        distribution_id=distribution_id,
        distribution_version=distribution.version,
        status=SCHEDULED,
        audience=request.audience.model_dump(exclude_none=True),
        campaign=campaign_of(config),
        delay_seconds=request.delay_seconds,
        scheduled_at=datetime.now(UTC) + timedelta(seconds=request.delay_seconds),
        requested_by=principal.name,
        audience_size=len(members) if members is not None else None,
    )
    session.add(run)
    await session.flush()
    await session.refresh(run)
    return run


async def cancel(*, session: AsyncSession, run_id: int, principal: OpsPrincipal) -> Run:
    """Stop a run. A scheduled one never starts; a running one pages no further and its
    deliveries still waiting are marked for withdrawal: skipped (`run_canceled`) in batches
    after the answer (`withdrawal.carry_out_on`), and no claim takes them from this commit on;
    those being published or sent at that moment finish (a retry of one is withdrawn too).
    Canceling a canceled run changes nothing."""
    run = await repository.get_for_update(session, run_id)
    if run is None:
        raise NotFoundError(f"no run {run_id}")
    if run.status == CANCELED:
        return run
    if run.status not in (SCHEDULED, RUNNING):
        raise ConflictError(f"run {run_id} is {run.status}: it has finished")
    if run.status == RUNNING:
        # The run lane stores its next page only while the run is `running` (a page in flight
        # is rolled back), so nothing is added after this commit.
        run.withdrawing = await withdrawal.has_unsettled(session, withdrawal.RUN, run_id)
        logger.info(
            "run %d canceled while running%s", run_id,
            ": its waiting deliveries are being withdrawn" if run.withdrawing else "",
        )  # fmt: skip
    run.status = CANCELED
    run.canceled_at = datetime.now(UTC)
    run.canceled_by = principal.name
    run.leased_by = None
    run.lease_expires_at = None
    run.next_try_at = None
    await session.flush()
    await session.refresh(run)
    return run


async def resume(*, session: AsyncSession, run_id: int, principal: OpsPrincipal) -> Run:
    """Send a run that gave up on Voucherify being unavailable on from its checkpoint: a worker
    takes it up at once; members that have a delivery already do not get a second one."""
    run = await repository.get_for_update(session, run_id)
    if run is None:
        raise NotFoundError(f"no run {run_id}")
    if run.status != FAILED or run.failures == 0:
        raise ConflictError(
            f"run {run_id} is {run.status}: only a run that failed because Voucherify was "
            "unavailable can be resumed"
            + (f" (this one failed for good: {run.error})" if run.status == FAILED else "")
        )
    distribution = await session.get(Distribution, run.distribution_id)
    if distribution is None or distribution.deleted_at is not None:
        raise ConflictError(f"run {run_id} cannot resume: its distribution was deleted")
    if distribution.status != "active":
        raise ConflictError(
            f"run {run_id} cannot resume: its distribution is {distribution.status}; resume it "
            f"first (POST /api/v1/distributions/{distribution.id}/resume)"
        )
    logger.info("run %d resumed by %s after %d failures", run_id, principal.name, run.failures)
    run.status, run.failures, run.error = RUNNING, 0, None
    run.resumed_at, run.resumed_by, run.resumes = datetime.now(UTC), principal.name, run.resumes + 1
    run.finished_at = run.next_try_at = None
    # Claimable at once: a running run is taken up when its lease has run out.
    run.leased_by, run.lease_expires_at = None, func.now()
    await session.flush()
    await session.refresh(run)
    return run


async def get_or_404(*, session: AsyncSession, run_id: int) -> Run:
    run = await session.get(Run, run_id)
    if run is None:
        raise NotFoundError(f"no run {run_id}")
    return run


async def summaries(*, session: AsyncSession, runs: Sequence[Run]) -> list[RunSummary]:
    """The runs with their progress (one query for all of them)."""
    live = [r.id for r in runs if r.counts is None]
    tallies = await repository.delivery_tallies(session, live)
    return [
        RunSummary.model_validate(
            {**_columns(run), "progress": _progress(run, tallies.get(run.id, []))}
        )
        for run in runs
    ]


async def detail(*, session: AsyncSession, run: Run) -> RunDetail:
    (summary,) = await summaries(session=session, runs=[run])
    return RunDetail(**summary.model_dump(), audience=run.audience)


def _progress(run: Run, rows: list[dict[str, object]]) -> Progress:
    counts = run.counts or summarize(rows, publishes=run.campaign is not None)
    return Progress.model_validate(
        {**counts, "audience_size": run.audience_size, "processed": run.processed}
    )


def _columns(run: Run) -> dict[str, object]:
    names = set(RunSummary.model_fields) - {"progress", "audience_kind"}
    return {
        **{name: getattr(run, name) for name in names},
        "audience_kind": next(iter(run.audience)),
    }
