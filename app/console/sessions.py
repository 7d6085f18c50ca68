"""Console sign-ins: a random id in an HttpOnly cookie, its hash in `console_sessions`.

The CSRF token of a session is derived from the session's id (which only its browser holds),
so forms carry it without any second secret being stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.auth import OpsPrincipal, OpsToken
from app.console.models import ConsoleSession

COOKIE = "vr_console"


@dataclass(frozen=True)
class SignedIn:
    """Who a console request comes from, and the CSRF token its forms must carry."""

    principal: OpsPrincipal
    csrf: str

    @property
    def can_act(self) -> bool:
        return self.principal.scope == "write"


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def csrf_token(session_id: str) -> str:
    return hmac.new(session_id.encode(), b"console csrf", hashlib.sha256).hexdigest()


def csrf_matches(session_id: str, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(csrf_token(session_id), presented)


async def start(*, session: AsyncSession, principal: OpsPrincipal, hours: float) -> str:
    """A new sign-in for `principal`; returns the id for the cookie (never stored as is).
    Expired sign-ins are removed on the way (through their index: few rows)."""
    now = datetime.now(UTC)
    await session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now))
    session_id = secrets.token_urlsafe(32)
    session.add(
        ConsoleSession(
            id_hash=_hash(session_id),
            token_name=principal.name,
            scope=principal.scope,
            expires_at=now + timedelta(hours=hours),
        )
    )
    await session.flush()
    return session_id


async def find(
    *, session: AsyncSession, session_id: str, tokens: list[OpsToken]
) -> SignedIn | None:
    """The sign-in of this cookie, if it has not expired and its token is still configured
    with the same scope (a token removed or made read-only ends its sign-ins)."""
    row = await session.scalar(
        select(ConsoleSession).where(
            ConsoleSession.id_hash == _hash(session_id),
            ConsoleSession.expires_at > datetime.now(UTC),
        )
    )
    if row is None:
        return None
    if not any(t.name == row.token_name and t.scope == row.scope for t in tokens):
        return None
    principal = OpsPrincipal(name=row.token_name, scope=row.scope)  # type: ignore[arg-type]
    return SignedIn(principal=principal, csrf=csrf_token(session_id))


async def end(*, session: AsyncSession, session_id: str) -> None:
    await session.execute(delete(ConsoleSession).where(ConsoleSession.id_hash == _hash(session_id)))
