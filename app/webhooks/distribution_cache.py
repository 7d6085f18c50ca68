"""The active distributions intake matches against, cached in process.

Every change to a distribution bumps its version, so a fingerprint of every (id, version)
says whether the cache is current: the inbox's statement checks it in the same statement that
stores the batch, and the writer reloads the cache and runs the statement again when not."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from typing import Any

import asyncpg
from pydantic import ValidationError

from app.distributions.envelope import Envelope
from app.distributions.schemas import DistributionConfig
from app.webhooks.matching import MatchableDistribution, Outcome, plan_deliveries

# The inbox's logger: these lines are part of intake's story.
logger = logging.getLogger("app.webhooks.inbox")

FINGERPRINT = (
    "SELECT md5(coalesce(string_agg(id::text || ':' || version::text, ',' ORDER BY id), ''))"
    " FROM distributions"
)
_LOAD = """
SELECT id, version, name, description, triggers, filters, code_source, identity, consent,
       mapping, action, update_existing_only, status
FROM distributions WHERE deleted_at IS NULL AND status = 'active'
"""


class DistributionCache:
    def __init__(self) -> None:
        self.fingerprint = ""
        self.distributions: list[MatchableDistribution] = []

    def plan(
        self, envelope: Envelope, *, without_deliveries: bool = False
    ) -> tuple[Outcome, list[dict[str, Any]]]:
        """The event's outcome and the deliveries the cached distributions plan for it."""
        if without_deliveries:
            return "failed", []
        try:
            deliveries = plan_deliveries(envelope=envelope, distributions=self.distributions)
        except Exception:
            # A mapping bug for one odd body must not fail the batch, nor make Voucherify retry
            # the event for a day: it is stored, to be replayed once the bug is fixed.
            logger.exception(
                "could not map webhook %s: stored without deliveries (outcome failed)",
                envelope.event_id,
            )
            return "failed", []
        outcome: Outcome = (
            "ignored" if not envelope.known_type else "matched" if deliveries else "unmatched"
        )
        return outcome, deliveries

    async def reload(self, connection: asyncpg.Connection) -> None:
        """Read the active distributions and their fingerprint in one snapshot."""
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            fingerprint = await connection.fetchval(FINGERPRINT)
            distributions = list(_matchable(await connection.fetch(_LOAD)))
        # Both at once: a writer planning while this one awaited the load would otherwise pass
        # the freshness check with the old list (seen by `make soak`: events stored unmatched).
        self.fingerprint, self.distributions = fingerprint, distributions
        logger.info("distributions reloaded: %d active", len(self.distributions))


def _matchable(rows: Iterable[asyncpg.Record]) -> Iterable[MatchableDistribution]:
    for row in rows:
        fields: dict[str, Any] = dict(row)
        distribution_id: uuid.UUID = fields.pop("id")
        version: int = fields.pop("version")
        try:
            config = DistributionConfig.model_validate(fields)
        except ValidationError as exc:
            # A row this version cannot read (edited by hand, or rules tightened by an upgrade)
            # must not stop intake: Voucherify gives up retrying after a while. Its webhooks are
            # stored without it, to be replayed (POST /api/v1/events/{id}/replay) once fixed.
            logger.error(
                "distribution %s (%s) is not valid and matches nothing until it is fixed: %s",
                distribution_id, fields.get("name"), exc.errors(include_input=False),
            )  # fmt: skip
            continue
        yield MatchableDistribution(distribution_id, version, config)
