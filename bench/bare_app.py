"""The baseline for intake: FastAPI on the same uvicorn stack, answering 202 without storing."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()


@app.post("/webhooks/voucherify")
async def receive(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"accepted": True}, status_code=202)
