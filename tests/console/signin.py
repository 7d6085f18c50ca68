"""Signing a test client in to the console, and reading a page's CSRF token."""

from __future__ import annotations

import re

import httpx

CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


async def sign_in(client: httpx.AsyncClient, token: str) -> str:
    """Sign `client` in with `token`; returns the CSRF token its forms carry."""
    response = await client.post("/console/sign-in", data={"token": token, "next": "/console"})
    assert response.status_code == 303, response.text
    page = await client.get("/console")
    assert page.status_code == 200, page.text
    found = CSRF.search(page.text)
    assert found is not None
    return found.group(1)
