"""Signing in and out of the console: the cookie, the session row, CSRF and scopes."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.console.models import ConsoleSession
from app.console.sessions import COOKIE
from tests.conftest import READ_TOKEN, WRITE_TOKEN
from tests.console.signin import sign_in
from tests.ops.replay_data import create_distribution


async def test_pages_send_a_stranger_to_the_sign_in_form(client: httpx.AsyncClient) -> None:
    response = await client.get("/console/deliveries")
    assert response.status_code == 303
    assert response.headers["location"] == "/console/sign-in?next=/console/deliveries"


async def test_an_unknown_token_is_refused_and_sets_no_cookie(client: httpx.AsyncClient) -> None:
    response = await client.post("/console/sign-in", data={"token": "guess"})
    assert response.status_code == 401
    assert "not one of OPS_API_TOKENS" in response.text
    assert COOKIE not in response.cookies


async def test_the_cookie_is_httponly_strict_and_holds_only_a_random_id(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    response = await client.post("/console/sign-in", data={"token": WRITE_TOKEN})
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain http: a Secure cookie would never come back
    session_id = response.cookies[COOKIE]
    row = (await session.scalars(select(ConsoleSession))).one()
    assert row.id_hash != session_id and len(row.id_hash) == 64
    assert (row.token_name, row.scope) == ("ops-team", "write")


async def test_over_https_the_cookie_is_secure(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://console.test") as client:
        response = await client.post("/console/sign-in", data={"token": WRITE_TOKEN})
    assert "Secure" in response.headers["set-cookie"]


async def test_the_next_page_must_be_a_console_page(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/console/sign-in", data={"token": READ_TOKEN, "next": "https://evil.example/"}
    )
    assert response.headers["location"] == "/console"


async def test_sign_out_ends_the_session_row(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    csrf = await sign_in(client, READ_TOKEN)
    response = await client.post("/console/sign-out", data={"csrf": csrf})
    assert response.status_code == 303
    assert await session.scalar(select(func.count()).select_from(ConsoleSession)) == 0
    assert (await client.get("/console")).status_code == 303


async def test_a_read_token_sees_pages_without_buttons_and_its_posts_get_403(
    client: httpx.AsyncClient,
) -> None:
    distribution_id = await create_distribution(client)
    csrf = await sign_in(client, READ_TOKEN)
    page = await client.get("/console/distributions")
    assert (
        page.status_code == 200 and "Pause" not in page.text and "New distribution" not in page.text
    )
    forged = await client.post(
        f"/console/distributions/{distribution_id}/pause", data={"csrf": csrf}
    )
    assert forged.status_code == 403
    assert "read-only" in forged.text


async def test_a_write_token_needs_the_csrf_token(client: httpx.AsyncClient) -> None:
    distribution_id = await create_distribution(client)
    csrf = await sign_in(client, WRITE_TOKEN)
    url = f"/console/distributions/{distribution_id}/pause"
    assert (await client.post(url, data={})).status_code == 403
    assert (await client.post(url, data={"csrf": "0" * 64})).status_code == 403
    done = await client.post(url, data={"csrf": csrf})
    assert done.status_code == 303
    listed = await client.get("/console/distributions")
    assert "Resume" in listed.text


async def test_a_token_removed_from_the_settings_ends_its_sessions(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await sign_in(client, WRITE_TOKEN)
    app.state.ops_tokens = [t for t in app.state.ops_tokens if t.secret != WRITE_TOKEN]
    assert (await client.get("/console")).status_code == 303


async def test_the_new_distribution_form_opens_for_a_write_token_only(
    client: httpx.AsyncClient,
) -> None:
    await sign_in(client, WRITE_TOKEN)
    assert (await client.get("/console/distributions/new")).status_code == 200
    await sign_in(client, READ_TOKEN)
    assert (await client.get("/console/distributions/new")).status_code == 403


async def test_a_console_form_is_read_through_the_body_door(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    # Unauthenticated bytes (a cookie is checked past the door): bounded like an API body.
    huge = "x" * (settings.api_max_body_bytes + 1)
    response = await client.post("/console/sign-in", data={"token": huge})
    assert response.status_code == 413
    assert "API_MAX_BODY_BYTES" in response.text
