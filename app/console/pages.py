"""Rendering: the Jinja2 environment, the filters the templates use, and the page response."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from app.console.sessions import SignedIn

HERE = Path(__file__).parent
STATIC = HERE / "static"
HTMX = "htmx-2.0.4.min.js"


def _when(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ago(value: datetime | None) -> str:
    if value is None:
        return "—"
    seconds = int((datetime.now(UTC) - value).total_seconds())
    if seconds < 0:
        return f"in {_span(-seconds)}"
    return f"{_span(seconds)} ago"


def _span(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} days"


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)


environment = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.filters.update(when=_when, ago=_ago, span=_span, pretty=_pretty)


def _next_page(request: Request, cursor: str) -> str:
    """The same page with the same filters, one page older."""
    query = {k: v for k, v in request.query_params.items() if k != "cursor" and v}
    return f"{request.url.path}?{urlencode({**query, 'cursor': cursor})}"


environment.globals.update(htmx=HTMX, next_page=_next_page)


def render(
    request: Request,
    template: str,
    user: SignedIn | None,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """The page (or, for an htmx request of a fragment template, the fragment)."""
    html = environment.get_template(template).render(
        request=request, user=user, path=request.url.path, **context
    )
    return HTMLResponse(html, status_code=status_code)
