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
    (e.TooLarge, 413),
    (e.InvalidInput, 400),
    (e.Unauthenticated, 401),
    (e.PermissionDenied, 403),
    (e.NotFound, 404),
    (e.Conflict, 409),
    (e.Throttled, 429),
    (e.IngestRejected, 422),
    (e.TrainingFailed, 400),  # as when it was raised as InvalidInput; no route answers it today
    (e.StoreLocked, 503),
    (e.StoreUnavailable, 503),
    (e.InsufficientDisk, 507),
    (e.Overloaded, 503),
]


def status_for(exc: e.ApplianceError) -> int:
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def error_body(kind: str, message: str, detail: Any = None) -> dict[str, Any]:
    """The error shape for what is not an ApplianceError (see ``errors.error_dict``)."""
    return {"error": e.error_dict(kind, message, detail)}


def error_response(exc: e.ApplianceError) -> JSONResponse:
    """The one answer to an ApplianceError: its status, its headers, ``{"error": ...}``.
    The app's exception handler and the predict fast lane both answer with this."""
    status = status_for(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if isinstance(exc, e.Throttled):
        headers = {"Retry-After": str(exc.retry_after)}
    return JSONResponse({"error": exc.to_dict()}, status_code=status, headers=headers)


def internal_error_response() -> JSONResponse:
    """An unexpected exception: logged with its traceback, answered without details."""
    log.exception("unhandled error")
    return JSONResponse(error_body("internal", "internal error; see the server log"), 500)


def install(app: FastAPI) -> None:
    @app.exception_handler(e.ApplianceError)
    async def _appliance(_: Request, exc: e.ApplianceError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [
            {"loc": list(err.get("loc", ())), "msg": err.get("msg"), "type": err.get("type")}
            for err in exc.errors()
        ]
        return JSONResponse(error_body("invalid_input", "the request is malformed", detail), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        from appliance.api.mlflow.edge import unrouted

        if (foreign := unrouted(request.url.path, exc.status_code, str(exc.detail))) is not None:
            return foreign  # the MLflow client reads only its own error shape
        kind = {404: "not_found", 405: "method_not_allowed", 400: "invalid_input"}.get(
            exc.status_code, "http_error"
        )
        return JSONResponse(error_body(kind, str(exc.detail)), exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        return internal_error_response()
