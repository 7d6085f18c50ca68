"""Bearer-token auth of the ops API: named tokens with a scope (`read` or `write`)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.errors import VoucherRelayError

Scope = Literal["read", "write"]
SCOPES: tuple[Scope, ...] = ("read", "write")


class UnauthorizedError(VoucherRelayError):
    status_code = 401
    code = "unauthorized"


class ForbiddenError(VoucherRelayError):
    status_code = 403
    code = "forbidden"


@dataclass(frozen=True)
class OpsToken:
    name: str
    scope: Scope
    secret: str

    def __repr__(self) -> str:  # the secret never reaches a log line
        return f"OpsToken(name={self.name!r}, scope={self.scope!r})"


@dataclass(frozen=True)
class OpsPrincipal:
    """Who is calling: the token's name is what the audit trail records."""

    name: str
    scope: Scope


def parse_tokens(entries: list[str]) -> list[OpsToken]:
    """Each entry `name:scope:token` (scope `read` or `write`; the token may hold colons).

    A ValueError names the entry by its position only: a malformed entry may be a bare token,
    so no part of it is ever repeated. A token given twice is refused (which scope would win?).
    """
    tokens: list[OpsToken] = []
    seen: dict[str, int] = {}
    for number, entry in enumerate(entries, start=1):
        parts = entry.split(":", 2)
        if len(parts) != 3:
            raise ValueError(f"entry {number} is not name:scope:token")
        name, scope, secret = parts
        if scope not in SCOPES:
            raise ValueError(f"entry {number}: the scope must be read or write (name:scope:token)")
        if not name or not secret:
            raise ValueError(f"entry {number}: empty name or token (name:scope:token)")
        if secret in seen:
            raise ValueError(f"entries {seen[secret]} and {number} have the same token")
        seen[secret] = number
        tokens.append(OpsToken(name=name, scope=scope, secret=secret))
    return tokens


def authenticate(tokens: list[OpsToken], presented: str) -> OpsPrincipal | None:
    """Compare against every token in constant time; None when none matches."""
    match = None
    for token in tokens:
        if hmac.compare_digest(token.secret.encode(), presented.encode()):
            match = token
    return OpsPrincipal(name=match.name, scope=match.scope) if match else None


_bearer = HTTPBearer(auto_error=False, description="a token from OPS_API_TOKENS")


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> OpsPrincipal:
    presented = credentials.credentials if credentials else None
    return principal_from(request.app.state.ops_tokens, presented)


def principal_from(tokens: list[OpsToken], presented: str | None) -> OpsPrincipal:
    """The caller a presented bearer token names; UnauthorizedError saying why if none."""
    if not tokens:
        raise UnauthorizedError("the ops API is disabled: no OPS_API_TOKENS are configured")
    if presented is None:
        raise UnauthorizedError("missing bearer token (Authorization: Bearer <token>)")
    principal = authenticate(tokens, presented)
    if principal is None:
        raise UnauthorizedError("unknown bearer token")
    return principal


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, read as HTTPBearer reads it."""
    scheme, _, token = (authorization or "").partition(" ")
    return token if scheme.lower() == "bearer" and token else None


async def writer(principal: Annotated[OpsPrincipal, Depends(current_principal)]) -> OpsPrincipal:
    if principal.scope != "write":
        raise ForbiddenError(f"token {principal.name!r} is read-only; this needs scope write")
    return principal


OpsAuthDep = Annotated[OpsPrincipal, Depends(current_principal)]
OpsWriterDep = Annotated[OpsPrincipal, Depends(writer)]
