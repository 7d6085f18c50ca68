"""Deliveries that wait for something from Voucherify before they can go to Braze: the customer
of an event that names it only by id (voucher.holder_id), and a code published from the
distribution's campaign (`code_source: publish`). The publisher fetches what is missing, maps
the event again, and hands the delivery back to the queue with its attributes.

A publication's `source_id` is derived from the distribution, the Voucherify event and the
customer, so a retry (or a crash between publishing and recording) never hands out a second code.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
from pydantic import ValidationError

from app.db.nul import without_nul
from app.db.raw import DATA_ERRORS
from app.delivery.budget import timed
from app.delivery.models import DEAD, FAILED
from app.delivery.reporting import SETTLED, log_given_up
from app.delivery.store import publishing
from app.delivery.store.claims import Reaping, reap_expired_leases
from app.distributions import mapping
from app.distributions.schemas import DistributionConfig
from app.errors import short_error
from app.metrics.registry import count_settled
from app.retry import retry_delay
from app.runs.envelope import run_config, run_event_id
from app.voucherify.client import VoucherifyClient
from app.voucherify.errors import (
    VoucherifyError,
    VoucherifyRateLimitedError,
    VoucherifyRequestError,
    VoucherifyUnavailableError,
)
from app.voucherify.retry import reschedule_after_429

logger = logging.getLogger(__name__)

# A run's delivery has no event: it carries its own envelope and is keyed by its run.
_CONTEXT = """
SELECT d.id, d.distribution_id, d.run_id, e.raw_body, d.context,
       e.voucherify_event_id,
       x.name, x.description, x.triggers, x.filters, x.code_source, x.identity, x.consent,
       x.mapping, x.action, x.update_existing_only, x.status
FROM unnest($1::bigint[]) AS k(id)
JOIN deliveries AS d ON d.id = k.id
JOIN distributions AS x ON x.id = d.distribution_id
LEFT JOIN webhook_events AS e ON e.id = d.event_id
"""
_CONFIG_FIELDS = (
    "name", "description", "triggers", "filters", "code_source", "identity", "consent",
    "mapping", "action", "update_existing_only", "status",
)  # fmt: skip
CUSTOMER_CACHE_SECONDS = 300.0


def publication_source_id(distribution_id: Any, event_id: str, customer: dict[str, Any]) -> str:
    """The same distribution, event and customer always give the same key (and so the same code)."""
    who = customer.get("id") or customer.get("source_id") or ""
    digest = hashlib.sha256(f"{distribution_id}|{event_id}|{who}".encode()).hexdigest()[:32]
    return f"vr_{digest}"


@dataclass(frozen=True)
class Outcome:
    status: str
    outcome: str
    message: str | None = None
    attributes: dict[str, Any] | None = None
    braze_user_key: str | None = None
    skip_reason: str | None = None
    retry_in: timedelta | None = None
    counts: bool = False


class Publisher:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        voucherify: VoucherifyClient,
        worker_id: str,
        lease: timedelta,
        schedule: Sequence[timedelta],
        rng: random.Random | None = None,
    ) -> None:
        self._pool = pool
        self.voucherify = voucherify
        self.worker_id = worker_id
        self._lease = lease.total_seconds()
        self._schedule = schedule
        self._rng = rng or random.Random()
        self._customers: dict[str, tuple[float, dict[str, Any]]] = {}
        self._reaping = Reaping()

    async def cycle(self, *, limit: int = 10) -> int:
        """Complete up to `limit` waiting deliveries; returns how many it settled."""
        async with self._pool.acquire() as connection:
            if self._reaping.due():
                async with connection.transaction():
                    await reap_expired_leases(connection)
            async with timed("publisher_claim"):
                claimed = await publishing.claim(
                    connection, worker_id=self.worker_id, lease=self._lease, limit=limit
                )
            if not claimed:
                return 0
            rows = await connection.fetch(_CONTEXT, [r["id"] for r in claimed])
        attempts = {r["id"]: r["attempts"] for r in claimed}
        settled: Counter[tuple[str, str]] = Counter()
        for row in rows:
            outcome = await self._complete_or_fail(row, attempts[row["id"]])
            outcome = await self._settle(row["id"], outcome)
            if outcome.status in SETTLED:
                settled[(outcome.status, outcome.skip_reason or "")] += 1
            if outcome.status in (FAILED, DEAD):
                log_given_up(row["id"], row["distribution_id"], outcome.status)
        for (status, reason), deliveries in settled.items():
            count_settled(status, reason, deliveries)
        return len(rows)

    async def _complete_or_fail(self, row: asyncpg.Record, attempts: int) -> Outcome:
        """What became of one delivery. Whatever goes wrong with it settles it, with the reason:
        raised, it would leave the delivery in flight, claimed again every lease, for ever, and
        the rest of its batch with it."""
        try:
            return await self._complete(row, attempts)
        except Exception as exc:
            logger.exception("delivery %s: could not be completed", row["id"])
            return Outcome("failed", "failed", f"internal_error: {short_error(exc)}", counts=True)

    async def _complete(self, row: asyncpg.Record, attempts: int) -> Outcome:
        try:
            envelope = (
                orjson.loads(row["raw_body"]) if row["raw_body"] is not None else row["context"]
            )
        except orjson.JSONDecodeError as exc:
            return Outcome("failed", "failed", f"invalid_event: the stored body is not JSON: {exc}",
                           counts=True)  # fmt: skip
        if envelope is None:
            return Outcome("failed", "failed", "the event is no longer stored (retention)")
        if not isinstance(envelope, dict):
            return Outcome("failed", "failed", "invalid_event: the stored event is not an object",
                           counts=True)  # fmt: skip
        try:
            config = DistributionConfig.model_validate({k: row[k] for k in _CONFIG_FIELDS})
        except ValidationError as exc:
            # Intake leaves such a distribution out of matching; what it queued before fails
            # here, to be replayed once the distribution is fixed.
            return Outcome("failed", "failed", f"invalid_distribution: {_problems(exc)}",
                           counts=True)  # fmt: skip
        event_key = row["voucherify_event_id"]
        if row["run_id"] is not None:
            config, event_key = run_config(config), run_event_id(row["run_id"])
        try:
            result = mapping.resolve(envelope=envelope, config=config)
            if isinstance(result, mapping.NeedsCustomer):
                envelope = copy.deepcopy(envelope)
                envelope.setdefault("data", {})["customer"] = await self._customer(
                    result.customer_id
                )
                result = mapping.resolve(envelope=envelope, config=config)
            if isinstance(result, mapping.NeedsPublish):
                publication = await self.voucherify.publish(
                    campaign=result.campaign,
                    customer=_publishable(result.customer),
                    source_id=publication_source_id(
                        row["distribution_id"], event_key, result.customer
                    ),
                )
                result = mapping.resolve(
                    envelope=envelope, config=config, voucher=publication.voucher
                )
        except VoucherifyRateLimitedError as exc:
            # Voucherify is up and asks us to come back later: no attempt of the schedule used.
            wait = timedelta(seconds=reschedule_after_429(exc.retry_after))
            return Outcome("pending", "rate_limited", f"Voucherify rate limited: {exc}",
                           retry_in=wait)  # fmt: skip
        except VoucherifyUnavailableError as exc:
            delay = retry_delay(attempt=attempts + 1, schedule=self._schedule, rng=self._rng)
            if delay is None:
                return Outcome("dead", "dead", f"Voucherify unavailable: {exc}", counts=True)
            return Outcome("pending", "retry", f"Voucherify unavailable: {exc}", retry_in=delay,
                           counts=True)  # fmt: skip
        except VoucherifyRequestError as exc:
            # Out of codes, unknown campaign or customer: retrying will not help; say why.
            return Outcome("failed", "failed", f"{exc.key or exc.http_status}: {exc.message}",
                           counts=True)  # fmt: skip
        except VoucherifyError as exc:
            return Outcome("failed", "failed", str(exc), counts=True)
        if isinstance(result, mapping.Send):
            return Outcome("pending", "resolved", None, result.attributes, result.braze_user_key,
                           retry_in=timedelta(0))  # fmt: skip
        if isinstance(result, mapping.Skip):
            return Outcome("skipped", "skipped", result.detail, None, result.braze_user_key,
                           skip_reason=result.reason)  # fmt: skip
        return Outcome("failed", "failed", f"could not resolve the delivery: {result}")

    async def _customer(self, customer_id: str) -> dict[str, Any]:
        """The customer, from a short cache: gift events for one holder come in bursts."""
        cached = self._customers.get(customer_id)
        if cached is not None and time.monotonic() - cached[0] < CUSTOMER_CACHE_SECONDS:
            return cached[1]
        customer = await self.voucherify.get_customer(customer_id)
        self._customers[customer_id] = (time.monotonic(), customer)
        return customer

    async def _settle(self, delivery_id: int, outcome: Outcome) -> Outcome:
        """Record the outcome; one Postgres refuses (a value no check foresaw) fails the
        delivery instead, saying why. The outcome recorded."""
        try:
            await self._record(delivery_id, outcome)
            return outcome
        except DATA_ERRORS as exc:
            logger.exception("delivery %s: its outcome could not be stored", delivery_id)
            failed = Outcome("failed", "failed", f"unstorable_result: {short_error(exc)}",
                             counts=True)  # fmt: skip
            await self._record(delivery_id, failed)
            return failed

    async def _record(self, delivery_id: int, outcome: Outcome) -> None:
        now = datetime.now(UTC)
        next_at = now + outcome.retry_in if outcome.retry_in is not None else now
        attributes = orjson.dumps(outcome.attributes).decode() if outcome.attributes else None
        # Voucherify's messages may quote what it was sent; Postgres text takes no NUL.
        message = without_nul(outcome.message)
        async with self._pool.acquire() as connection:
            await publishing.settle(
                connection, delivery_id, status=outcome.status, attributes=attributes,
                braze_user_key=outcome.braze_user_key, skip_reason=outcome.skip_reason,
                message=message, next_at=next_at, counts=outcome.counts,
                worker_id=self.worker_id, outcome=outcome.outcome,
            )  # fmt: skip


def _problems(exc: ValidationError) -> str:
    """Where and what, never the values (they may quote a customer)."""
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or 'distribution'}: {e['msg']}"
        for e in exc.errors(include_input=False)
    )


def _publishable(customer: dict[str, Any]) -> dict[str, Any]:
    """What Voucherify needs to know who gets the code (it upserts the customer by source_id)."""
    keys = ("id", "source_id", "email", "name")
    return {k: customer[k] for k in keys if customer.get(k)}
