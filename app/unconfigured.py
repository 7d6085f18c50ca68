"""What is not configured and what that disables: said once at start-up, in one block, and
listed by `/readyz` as information (none of it makes the service unready)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from app.config import Settings


@dataclass(frozen=True)
class Unconfigured:
    settings: tuple[str, ...]
    disables: str

    def as_json(self) -> dict[str, object]:
        return {"settings": list(self.settings), "disables": self.disables}


def unconfigured(settings: Settings, *, api: bool, worker: bool) -> list[Unconfigured]:
    """The gaps that matter to a process serving the API (`api`), delivering (`worker`), or
    both (`serve`): each names its settings and what does not work without them."""
    gaps: list[Unconfigured] = []
    if api and not settings.ops_api_tokens:
        gaps.append(Unconfigured(
            ("OPS_API_TOKENS",), "the ops API: every /api/v1 call answers 401",
        ))  # fmt: skip
    if api and not settings.voucherify_webhook_secret:
        gaps.append(Unconfigured(
            ("VOUCHERIFY_WEBHOOK_SECRET",),
            "webhooks: every POST /webhooks/voucherify answers 401 and nothing is stored",
        ))  # fmt: skip
    if worker and settings.braze_api_key is None:
        gaps.append(Unconfigured(
            ("BRAZE_API_KEY",), "sending to Braze: deliveries wait in the queue",
        ))  # fmt: skip
    if worker and (not settings.voucherify_app_id or settings.voucherify_app_token is None):
        gaps.append(Unconfigured(
            ("VOUCHERIFY_APP_ID", "VOUCHERIFY_APP_TOKEN"),
            "the Voucherify API: codes of `code_source: publish`, customer look-ups and manual "
            "runs wait",
        ))  # fmt: skip
    return gaps


def log_unconfigured(logger: logging.Logger, gaps: list[Unconfigured]) -> None:
    """One WARNING for all of them (nothing when everything is set)."""
    if not gaps:
        return
    lines = "".join(f"\n  {', '.join(gap.settings)}: {gap.disables}" for gap in gaps)
    logger.warning(
        "not configured (see docs/configuration.md):%s", lines,
        extra={"not_configured": [gap.as_json() for gap in gaps]},
    )  # fmt: skip
