"""Every model, imported in one place so that alembic sees the whole metadata."""

from app.braze.models import BrazeGate, BrazeRequest
from app.console.models import ConsoleSession
from app.db.base import Base
from app.delivery.models import AttributeState, Delivery, DeliveryAttempt
from app.distributions.models import Distribution
from app.ops.models import Replay
from app.runs.models import Run
from app.webhooks.models import WebhookEvent

__all__ = [
    "AttributeState",
    "Base",
    "BrazeGate",
    "BrazeRequest",
    "ConsoleSession",
    "Delivery",
    "DeliveryAttempt",
    "Distribution",
    "Replay",
    "Run",
    "WebhookEvent",
]
