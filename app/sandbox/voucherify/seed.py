"""What `voucher-relay voucherify-emulator` starts with, so that a sandbox run works without a
Voucherify account: the customer of the sample webhooks (`tests/fixtures/events/`), two more,
their segment, and a campaign with codes to publish.
"""

from __future__ import annotations

from datetime import UTC, datetime

from app.sandbox.voucherify.state import EmulatorState

# The ids and names of the sample webhooks, so that previews, webhooks and runs agree.
SEGMENT_ID = "seg_Vq7Lm2Rt9Kx4Nb1Zc8Hs3Pw"
CAMPAIGN_ID = "camp_Rt5Yh2Nq8Lp4Vx7Kc1Mz3Bw6"
CAMPAIGN_NAME = "Welcome 10% Off"
CODE_COUNT = 1000
CUSTOMERS = (
    {
        "id": "cust_8fN2kQ4rT6vX1zB3mP5sL7wY", "source_id": "braze-usr-10042",
        "name": "Mia Schneider", "email": "mia.schneider@example.com",
        "metadata": {"country": "DE", "braze_opt_in": True},
    },
    {
        "source_id": "braze-usr-10043", "name": "Jonas Weber", "email": "jonas.weber@example.com",
        "metadata": {"country": "DE", "braze_opt_in": True},
    },
    {
        # Not opted in: a distribution with a consent rule skips her (`no_consent`).
        "source_id": "braze-usr-10044", "name": "Lena Fischer", "email": "lena.fischer@example.com",
        "metadata": {"country": "DE", "braze_opt_in": False},
    },
)  # fmt: skip


def seed_sandbox(state: EmulatorState) -> None:
    """Add the sandbox's customers (all in segment `SEGMENT_ID`, "New members DE") and the
    campaign `CAMPAIGN_NAME` with `CODE_COUNT` codes WELCOME-000001, WELCOME-000002, ..."""
    for customer in CUSTOMERS:
        state.add_customer(**customer, segments=[SEGMENT_ID])
    state.add_campaign(
        name=CAMPAIGN_NAME,
        id=CAMPAIGN_ID,
        count=CODE_COUNT,
        pattern="WELCOME-######",
        expiration_date=datetime(2030, 12, 31, 22, 59, 59, tzinfo=UTC),
    )
