"""A Voucherify emulator: the few API endpoints voucher-relay calls, answered from memory,
with Voucherify's auth, paging limits and rate limit, and faults on demand. For tests (in
process through `httpx.ASGITransport`, or served on loopback) and benchmarks; never part of the
service's own app.

API (auth: `X-App-Id` / `X-App-Token`): `POST /v1/publications`, `GET /v1/publications`,
`GET /v1/vouchers/{code}`, `GET /v1/customers/{id or source_id}`, `GET /v1/customers`.

Control from the test's process: `voucherify_emulator_state(app).add_campaign(...)`,
`.seed_customers(...)`, `.faults.fail_next(2, status=503)`. From another process, over HTTP:

- `POST /_emulator/customers` (`CustomersSeed`), `POST /_emulator/segments` (`SegmentSeed`),
  `POST /_emulator/campaigns` (`CampaignSeed`);
- `POST /_emulator/faults` (`FaultsUpdate`), `GET /_emulator/faults`;
- `GET /_emulator/publications` (who got which code), `GET /_emulator/requests` (the log);
- `POST /_emulator/reset` forgets everything.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import SecretStr

from app.sandbox.voucherify.control import CampaignSeed, CustomersSeed, SegmentSeed
from app.sandbox.voucherify.faults import FaultsUpdate, Refusal, error_body
from app.sandbox.voucherify.objects import ApiError
from app.sandbox.voucherify.state import DuplicateSourceId, EmulatorState, PublicationListing


def create_voucherify_emulator(
    *,
    app_id: str,
    app_token: str | SecretStr,
    requests_per_minute: int | None = None,
    rate_window_seconds: float = 60.0,
    duplicate_source_id: DuplicateSourceId = "error",
    publication_listing: PublicationListing = "voucher",
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """An ASGI app that answers like Voucherify for the one key pair `app_id` / `app_token`.

    `requests_per_minute` (per `rate_window_seconds`) enables the rate limit (None: no limit;
    Voucherify's Business plan allows 100); see `EmulatorState` for the other settings. The
    state is `voucherify_emulator_state(app)`.
    """
    token = app_token.get_secret_value() if isinstance(app_token, SecretStr) else app_token
    state = EmulatorState(
        app_id=app_id,
        app_token=token,
        requests_per_minute=requests_per_minute,
        rate_window_seconds=rate_window_seconds,
        duplicate_source_id=duplicate_source_id,
        publication_listing=publication_listing,
        clock=clock,
    )
    app = FastAPI(title="Voucherify emulator", docs_url=None, redoc_url=None)
    app.state.emulator = state

    @app.middleware("http")
    async def gate(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """Latency, auth, injected faults and the rate limit, in that order, then the log."""
        if not request.url.path.startswith("/v1/"):
            return await call_next(request)
        if state.faults.latency_ms > 0:
            await asyncio.sleep(state.faults.latency_ms / 1000)
        refusal = _auth_refusal(state, request) or state.faults.next_failure()
        rate_headers: dict[str, str] = {}
        if refusal is None:
            rate_headers, refusal = state.rate.take()
        if refusal is not None:
            response: Response = JSONResponse(
                refusal.body, status_code=refusal.status, headers=refusal.headers
            )
        else:
            response = await call_next(request)
            response.headers.update(rate_headers)
        state.record(
            method=request.method,
            path=request.url.path,
            query=request.url.query,
            status=response.status_code,
            fault=None if refusal is None else refusal.fault,
        )
        return response

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body, status_code=exc.status)

    @app.exception_handler(ValueError)
    async def bad_seed(request: Request, exc: ValueError) -> JSONResponse:
        # Seeding a customer twice, a segment member that does not exist, a duplicate code.
        return JSONResponse(error_body(400, key="invalid_seed", message=str(exc)), status_code=400)

    @app.post("/v1/publications", include_in_schema=False)
    async def publish(request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "invalid_payload", "Invalid payload", "not JSON") from None
        return state.publish(body)

    @app.get("/v1/publications", include_in_schema=False)
    async def list_publications(
        source_id: str | None = None, customer: str | None = None
    ) -> dict[str, Any]:
        return state.list_publications(source_id=source_id, customer=customer)

    @app.get("/v1/vouchers/{code}", include_in_schema=False)
    async def get_voucher(code: str) -> dict[str, Any]:
        return state.get_voucher(code)

    @app.get("/v1/customers/{customer}", include_in_schema=False)
    async def get_customer(customer: str) -> dict[str, Any]:
        return state.get_customer(customer)

    @app.get("/v1/customers", include_in_schema=False)
    async def list_customers(request: Request) -> dict[str, Any]:
        return state.list_customers(request.query_params)

    _add_control_routes(app, state)
    return app


def voucherify_emulator_state(app: FastAPI) -> EmulatorState:
    """The state of an app made by `create_voucherify_emulator`."""
    state = app.state.emulator
    if not isinstance(state, EmulatorState):
        raise TypeError("this app was not made by create_voucherify_emulator")
    return state


def _auth_refusal(state: EmulatorState, request: Request) -> Refusal | None:
    app_id = request.headers.get("x-app-id", "")
    token = request.headers.get("x-app-token", "")
    if hmac.compare_digest(app_id.encode(), state.app_id.encode()) and hmac.compare_digest(
        token.encode(), state.app_token.encode()
    ):
        return None
    return Refusal(401, body=error_body(401, key="unauthorized", message="Unauthorized"))


def _add_control_routes(app: FastAPI, state: EmulatorState) -> None:
    @app.post("/_emulator/customers")
    async def seed_customers(seed: CustomersSeed) -> dict[str, int]:
        return {"created": seed.apply(state)}

    @app.post("/_emulator/segments", status_code=204)
    async def seed_segment(seed: SegmentSeed) -> None:
        seed.apply(state)

    @app.post("/_emulator/campaigns")
    async def seed_campaign(seed: CampaignSeed) -> dict[str, Any]:
        campaign = seed.apply(state)
        return {"id": campaign.id, "name": campaign.name, "codes": campaign.codes}

    @app.get("/_emulator/publications")
    async def publications() -> list[dict[str, Any]]:
        return state.publications_snapshot()

    @app.get("/_emulator/requests")
    async def requests() -> list[dict[str, Any]]:
        return state.requests_snapshot()

    @app.get("/_emulator/faults")
    async def get_faults() -> dict[str, Any]:
        return state.faults.describe()

    @app.post("/_emulator/faults")
    async def set_faults(update: FaultsUpdate) -> dict[str, Any]:
        state.faults.apply(update)
        return state.faults.describe()

    @app.post("/_emulator/reset", status_code=204)
    async def reset() -> None:
        state.reset()
