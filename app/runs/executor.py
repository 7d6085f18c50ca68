"""Running a due run in the worker: claim it, page its audience, give each member a delivery.

Each member's delivery carries an envelope made for it (`envelope.py`); the publisher lane then
applies consent, publishes the code (source_id from distribution, run and customer) and the
Braze lanes send it, as for any event. Pages are stored with their checkpoint in one
transaction and a member can have only one delivery per run, so a run that stops half-way (a
crash, a shutdown, Voucherify down) resumes where it stopped and creates nothing twice.

Voucherify being unavailable while the audience is paged makes the run wait, longer after each
failure in a row (`backoff.py`), and give up as `failed` after `max_failures` of them; a stored
page starts the count again. A run that gave up can be resumed (`service.resume`). Voucherify
asking for a long wait (429 past what the client sleeps) is no failure: the run waits that long.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import timedelta
from typing import Any

import asyncpg

from app.db.jsonb import jsonb_problem
from app.db.nul import contains_nul, without_nul
from app.delivery.failures import FailureStreak, poll_until_stopped
from app.runs.backoff import FIRST_WAIT_SECONDS, LONGEST_WAIT_SECONDS, give_up_message, paging_delay
from app.runs.envelope import run_envelope
from app.runs.store import ClaimedRun, LostLeaseError, Member, RunStore
from app.voucherify.client import MAX_PAGE_SIZE, VoucherifyClient
from app.voucherify.errors import (
    CustomerNotFoundError,
    VoucherifyError,
    VoucherifyRateLimitedError,
    VoucherifyRequestError,
    VoucherifyUnavailableError,
)
from app.voucherify.retry import reschedule_after_429
from app.voucherify.segments import MemberCursor

logger = logging.getLogger(__name__)

MAX_MEMBER_KEY_BYTES = 1024
# Listed customers are fetched one request each: store them in small pages so that the lease
# is renewed often even when the Voucherify budget (100 a minute) paces the requests.
LISTED_PAGE = 10


class Stopping(Exception):
    """The worker is shutting down: leave the run for the next worker."""


class RunExecutor:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        voucherify: VoucherifyClient,
        worker_id: str,
        lease: timedelta,
        page_size: int = MAX_PAGE_SIZE,
        max_failures: int = 12,
        retry_after: timedelta = timedelta(seconds=FIRST_WAIT_SECONDS),
        retry_cap: timedelta = timedelta(seconds=LONGEST_WAIT_SECONDS),
    ) -> None:
        """`max_failures`: Voucherify unavailable this many times in a row fails the run
        (RUN_MAX_FAILURES); it waits `retry_after` after the first, doubling up to `retry_cap`."""
        self.store = RunStore(pool, worker_id=worker_id, lease=lease)
        self.voucherify = voucherify
        self.page_size = page_size
        self.max_failures = max_failures
        self._retry_after = retry_after.total_seconds()
        self._retry_cap = retry_cap.total_seconds()
        self._stop = asyncio.Event()

    async def run(self, stop: asyncio.Event, *, poll_seconds: float) -> None:
        """The worker's run lane: work due runs until `stop` is set."""
        self._stop = stop
        streak = FailureStreak(logger, "run lane", first_wait=poll_seconds)
        await poll_until_stopped(
            stop, self.cycle, streak=streak, idle_wait=poll_seconds,
            consequence="the run's lease expires and it resumes",
        )  # fmt: skip

    async def cycle(self) -> bool:
        """Close settled runs, then page the next due run. True when a run was worked on."""
        for run_id in await self.store.finish_settled():
            logger.info("run %d is done", run_id)
        run = await self.store.claim()
        if run is None:
            return False
        logger.info("run %d: paging its audience %s", run.id, _describe(run.audience))
        try:
            await self._page(run)
        except Stopping:
            # Let the next worker take it at once rather than after the lease.
            await self.store.release(run.id)
        except LostLeaseError:
            logger.warning("run %d is no longer ours: canceled, or taken over by another worker",
                           run.id)  # fmt: skip
        except VoucherifyRateLimitedError as exc:
            await self._rate_limited(run.id, exc)
        except VoucherifyUnavailableError as exc:
            await self._unavailable(run.id, exc)
        except VoucherifyError as exc:
            # An unknown segment, say: retrying will not help.
            await self.store.fail(run.id, f"Voucherify refused to list the audience: {exc}")
        return True

    async def _rate_limited(self, run_id: int, exc: VoucherifyRateLimitedError) -> None:
        """Voucherify is up and asks us to come back later (a quota, say): wait what it asked.
        Not a failure: it does not count towards `max_failures`."""
        wait = reschedule_after_429(exc.retry_after)
        logger.warning("run %d: Voucherify rate limited (%s); next try in %g s", run_id, exc, wait)
        error = (
            f"Voucherify rate limited: waiting {wait:.0f} s; next try at next_try_at (a rate "
            f"limit does not count towards RUN_MAX_FAILURES). Last error: {exc}"
        )
        await self.store.postpone(run_id, seconds=wait, error=error)

    async def _unavailable(self, run_id: int, exc: VoucherifyUnavailableError) -> None:
        """Wait longer after each failure in a row; give up after `max_failures` of them."""
        failures = await self.store.failed_again(run_id)
        if failures is None:
            logger.warning("run %d was taken over by another worker", run_id)
            return
        if failures >= self.max_failures:
            logger.error("run %d: Voucherify unavailable %d times in a row; giving up: %s",
                         run_id, failures, exc)  # fmt: skip
            message = give_up_message(run_id, failures, last_error=str(exc))
            await self.store.fail(run_id, message, resumable=True)
            return
        wait = paging_delay(failures, first=self._retry_after, cap=self._retry_cap)
        logger.warning("run %d: Voucherify unavailable (%s), %d of %d tries; next in %g s",
                       run_id, exc, failures, self.max_failures, wait)  # fmt: skip
        error = (
            f"Voucherify unavailable: {failures} of {self.max_failures} tries in a row before the "
            f"run gives up (RUN_MAX_FAILURES); next try at next_try_at. Last error: {exc}"
        )
        await self.store.postpone(run_id, seconds=wait, error=error)

    async def _page(self, run: ClaimedRun) -> None:
        if (state := await self.store.distribution_state(run.distribution_id)) != "active":
            await self.store.fail(run.id, f"the distribution was {state} before the run started")
            return
        segment_id = run.audience.get("segment_id")
        if segment_id is not None:
            await self._page_segment(run, str(segment_id))
        else:
            await self._page_listed(run)
        await self.store.paged(run.id)

    async def _page_segment(self, run: ClaimedRun, segment_id: str) -> None:
        if run.audience_size is None:
            await self.store.set_size(run.id, await self.voucherify.count_segment(segment_id))
        # `stored` moves only past what is committed; the client moves `walk` past each page.
        stored = MemberCursor.from_checkpoint(run.checkpoint)
        walk = MemberCursor.from_checkpoint(run.checkpoint)
        page: list[dict[str, Any]] = []
        members = self.voucherify.iter_segment_members(
            segment_id, page_size=self.page_size, after=walk
        )
        async for customer in members:
            page.append(customer)
            if len(page) == self.page_size:
                await self._store(run, page, stored, segment_id)
                page = []
        if page:
            await self._store(run, page, stored, segment_id)

    async def _store(
        self, run: ClaimedRun, customers: list[dict[str, Any]], stored: MemberCursor,
        segment_id: str,
    ) -> None:  # fmt: skip
        self._check_stop()
        stored.unseen(customers)
        members = [self._member(run, c["id"], c, segment_id) for c in customers]
        await self.store.add_members(run, members, checkpoint=stored.checkpoint())

    async def _page_listed(self, run: ClaimedRun) -> None:
        listed: list[str] = run.audience.get("customer_ids") or run.audience.get("source_ids") or []
        start = int(run.checkpoint.get("offset", 0))
        while start < len(listed):
            self._check_stop()
            chunk = listed[start : start + LISTED_PAGE]
            members = [await self._listed_member(run, ref) for ref in chunk]
            start += len(chunk)
            await self.store.add_members(run, members, checkpoint={"offset": start})

    async def _listed_member(self, run: ClaimedRun, ref: str) -> Member:
        try:
            customer = await self.voucherify.get_customer(ref)
        except CustomerNotFoundError as exc:
            return Member(ref, None, f"customer_not_found: {exc.message}")
        except VoucherifyRequestError as exc:
            return Member(ref, None, f"{exc.key or exc.http_status}: {exc.message}")
        return self._member(run, ref, customer, None)

    def _member(
        self, run: ClaimedRun, ref: str, customer: dict[str, Any], segment_id: str | None
    ) -> Member:
        key = member_key(ref)
        if contains_nul(customer):
            # Postgres cannot keep it, and a cleaned copy could address another Braze user.
            reason = "invalid_customer: the customer's data contains the NUL character (\\u0000)"
            return Member(without_nul(key), None, reason)
        envelope = self._envelope(run, customer, segment_id)
        if (problem := jsonb_problem(envelope)) is not None:
            # Stored, it would stop the code lane at every claim that returns it.
            return Member(key, None, f"invalid_customer: the customer's data is {problem}")
        return Member(key, envelope)

    def _envelope(
        self, run: ClaimedRun, customer: dict[str, Any], segment_id: str | None
    ) -> dict[str, Any]:
        return run_envelope(
            run_id=run.id, distribution_id=run.distribution_id, customer=customer,
            segment_id=segment_id, created_at=run.started_at,
        )  # fmt: skip

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise Stopping


def member_key(ref: str) -> str:
    """A member's key in its run: the customer id (or the reference the audience listed). The
    key is in a unique index, which takes no value of any length: an id over 1,024 bytes (no
    real one is) is kept as its start and a digest, still one key per customer."""
    if len(ref.encode()) <= MAX_MEMBER_KEY_BYTES:
        return ref
    return f"{ref[:100]}...sha256:{hashlib.sha256(ref.encode()).hexdigest()}"


def _describe(audience: dict[str, Any]) -> str:
    if "segment_id" in audience:
        return f"segment {audience['segment_id']}"
    kind = next(iter(audience))
    return f"{len(audience[kind])} {kind}"
