"""Every model, imported in one place so that alembic sees the whole metadata."""

from app.db.base import Base
from app.delivery.models import Delivery
from app.distributions.models import Distribution
from app.webhooks.models import WebhookEvent

__all__ = ["Base", "Delivery", "Distribution", "WebhookEvent"]
