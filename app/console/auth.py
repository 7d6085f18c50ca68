"""Who a console request comes from: the sign-in cookie, and for anything that changes
something a write token's sign-in and the form's CSRF token (else 403, buttons or not)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qs

from fastapi import Depends, Request

from app.api.auth import ForbiddenError
from app.console import sessions
from app.console.sessions import SignedIn
from app.db.session import SessionDep

CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"


class SignInRequiredError(Exception):
    """No valid sign-in: pages send the browser to the sign-in form (see install)."""


async def read_form(request: Request) -> dict[str, list[str]]:
    """The urlencoded form of a POST, read once per request (blank fields kept)."""
    cached: dict[str, list[str]] | None = getattr(request.state, "console_form", None)
    if cached is None:
        body = (await request.body()).decode("utf-8", errors="replace")
        cached = parse_qs(body, keep_blank_values=True)
        request.state.console_form = cached
    return cached


def field(form: dict[str, list[str]], name: str) -> str:
    values = form.get(name)
    return values[0].strip() if values else ""


async def signed_in(request: Request, session: SessionDep) -> SignedIn:
    session_id = request.cookies.get(sessions.COOKIE)
    if not session_id:
        raise SignInRequiredError
    found = await sessions.find(
        session=session, session_id=session_id, tokens=request.app.state.ops_tokens
    )
    if found is None:
        raise SignInRequiredError
    return found


SignedInDep = Annotated[SignedIn, Depends(signed_in)]


async def writer(user: SignedInDep) -> SignedIn:
    """A write token's sign-in (the pages of a form that acts)."""
    if not user.can_act:
        raise ForbiddenError(f"token {user.principal.name!r} is read-only; this needs scope write")
    return user


WriterDep = Annotated[SignedIn, Depends(writer)]


async def acting(request: Request, user: WriterDep) -> SignedIn:
    """A write token's sign-in, on a request that carries its CSRF token (form or header)."""
    presented = request.headers.get(CSRF_HEADER) or field(await read_form(request), CSRF_FIELD)
    if not sessions.csrf_matches(request.cookies[sessions.COOKIE], presented):
        raise ForbiddenError("the form's CSRF token is missing or wrong: reload the page")
    return user


ActingDep = Annotated[SignedIn, Depends(acting)]
