"""Store a verified webhook and its deliveries in one transaction (the inbox and the outbox)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, cast

from sqlalchemy import insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.delivery.models import PENDING, SKIPPED, Delivery
from app.distributions import mapping
from app.distributions.models import Distribution
from app.distributions.service import to_config
from app.webhooks.envelope import Envelope
from app.webhooks.models import WebhookEvent
from app.webhooks.signature import SignatureResult

Outcome = Literal["matched", "unmatched", "ignored"]


@dataclass(frozen=True)
class StoredEvent:
    event_id: int
    duplicate: bool
    outcome: Outcome
    deliveries: int


def plan_deliveries(
    *, envelope: Envelope, distributions: list[Distribution], trigger: str = "webhook"
) -> list[dict[str, Any]]:
    """One delivery row per distribution whose triggers and filters match the event.

    Resolution happens here: the attributes (or the reason to skip) are stored on the delivery,
    so the audit log shows exactly what will be sent. Filtered-out distributions get no row.
    """
    rows = []
    for distribution in distributions:
        result = mapping.resolve(envelope=envelope.body, config=to_config(distribution))
        if isinstance(result, mapping.Skip) and result.reason == mapping.FILTERED_OUT:
            continue
        row: dict[str, Any] = {
            "distribution_id": distribution.id,
            "distribution_version": distribution.version,
            "trigger": trigger,
            "braze_user_key": result.braze_user_key,
            "event_time": envelope.occurred_at,
            "status": PENDING,
        }
        if isinstance(result, mapping.Send):
            row["attributes"] = result.attributes
        elif isinstance(result, mapping.Skip):
            row.update(status=SKIPPED, skip_reason=result.reason, last_error=result.detail)
        # NeedsPublish: pending with no attributes yet; the worker publishes a code first.
        rows.append(row)
    return rows


async def store_event(
    *,
    session: AsyncSession,
    envelope: Envelope,
    raw_body: bytes,
    signature: SignatureResult,
) -> StoredEvent:
    """Insert the event unless already stored (event.id + source.id), then its deliveries."""
    distributions: list[Distribution] = []
    if envelope.known_type:
        query = select(Distribution).where(
            Distribution.deleted_at.is_(None),
            Distribution.status == "active",
            Distribution.triggers.contains([envelope.event_type]),
        )
        distributions = list((await session.execute(query)).scalars())
    rows = plan_deliveries(envelope=envelope, distributions=distributions)
    outcome: Outcome = (
        "ignored" if not envelope.known_type else ("matched" if rows else "unmatched")
    )

    inserted = await session.execute(
        pg_insert(WebhookEvent)
        .values(
            voucherify_event_id=envelope.event_id,
            source_id=envelope.source_id,
            source_object=envelope.source_object,
            send_out_id=envelope.send_out_id,
            project_id=envelope.project_id,
            event_type=envelope.event_type,
            customer_id=envelope.customer_id,
            customer_source_id=envelope.customer_source_id,
            event_created_at=envelope.occurred_at,
            raw_body=raw_body,
            envelope=envelope.body,
            signature_result=signature,
            outcome=outcome,
            deliveries_created=len(rows),
        )
        .on_conflict_do_nothing(index_elements=["voucherify_event_id", "source_id"])
        .returning(WebhookEvent.id)
    )
    event_id = inserted.scalar_one_or_none()
    if event_id is None:
        existing = await session.execute(
            select(WebhookEvent.id, WebhookEvent.outcome).where(
                WebhookEvent.voucherify_event_id == envelope.event_id,
                WebhookEvent.source_id == envelope.source_id,
            )
        )
        previous_id, previous_outcome = existing.one()
        return StoredEvent(
            previous_id, duplicate=True, outcome=cast(Outcome, previous_outcome), deliveries=0
        )

    if rows:
        await session.execute(insert(Delivery), [{**row, "event_id": event_id} for row in rows])
    return StoredEvent(event_id, duplicate=False, outcome=outcome, deliveries=len(rows))
