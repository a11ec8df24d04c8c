"""Maps the error tree to HTTP statuses, in one place, with one JSON shape."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from appliance import errors as e

log = logging.getLogger(__name__)

STATUS: list[tuple[type[e.ApplianceError], int]] = [
    (e.UnprocessableInput, 422),
    (e.InvalidInput, 400),
    (e.Unauthenticated, 401),
    (e.PermissionDenied, 403),
    (e.NotFound, 404),
    (e.Conflict, 409),
    (e.Throttled, 429),
    (e.IngestRejected, 422),
    (e.StoreLocked, 503),
    (e.StoreUnavailable, 503),
    (e.InsufficientDisk, 507),
    (e.Overloaded, 503),
]


def status_for(exc: e.ApplianceError) -> int:
    too_big = isinstance(exc.detail, dict) and exc.detail.get("reason") == "too_big"
    if isinstance(exc, e.InvalidInput) and too_big:
        return 413
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def error_body(kind: str, message: str, detail: Any = None) -> dict[str, Any]:
    return {"error": {"type": kind, "message": message, "detail": detail}}


def install(app: FastAPI) -> None:
    @app.exception_handler(e.ApplianceError)
    async def _appliance(_: Request, exc: e.ApplianceError) -> JSONResponse:
        status = status_for(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if isinstance(exc, e.Throttled):
            headers = {"Retry-After": str(exc.retry_after)}
        body = error_body(exc.kind, exc.message, exc.detail)
        return JSONResponse(body, status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [
            {"loc": list(err.get("loc", ())), "msg": err.get("msg"), "type": err.get("type")}
            for err in exc.errors()
        ]
        return JSONResponse(error_body("invalid_input", "the request is malformed", detail), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not_found", 405: "method_not_allowed", 400: "invalid_input"}.get(
            exc.status_code, "http_error"
        )
        return JSONResponse(error_body(kind, str(exc.detail)), exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse(error_body("internal", "internal error; see the server log"), 500)
