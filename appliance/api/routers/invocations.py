"""MLflow's scoring protocol for users leaving ``mlflow models serve``: a thin adapter.

``POST /api/v1/models/{name}/invocations`` scores model ``name``, so a client
that appends ``/invocations`` to its base URL switches by changing the URL to
``.../api/v1/models/{name}``. ``POST /invocations`` scores the only registered
model. Errors have MLflow's shape, ``{"error_code", "message"}``, on these
paths only; auth is predict's (viewer).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from appliance.api.bodies import is_parquet, read_capped
from appliance.api.deps import BEARER_SECURITY, authorize
from appliance.api.errors import status_for
from appliance.api.routers.serving import MAX_BODY_BYTES, parse_records
from appliance.domain.roles import Role
from appliance.domain.serving import Invocation
from appliance.errors import ApplianceError, InvalidInput, Throttled
from appliance.runtime import Appliance
from appliance.serve.invocations import records_of

log = logging.getLogger(__name__)
router = APIRouter(tags=["mlflow scoring"])

_CODES = {400: "BAD_REQUEST", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
          404: "RESOURCE_DOES_NOT_EXIST", 413: "BAD_REQUEST", 415: "BAD_REQUEST",
          429: "REQUEST_LIMIT_EXCEEDED", 503: "TEMPORARILY_UNAVAILABLE"}
_INLINE_BYTES = 64 * 1024
_DOC: dict[str, Any] = {
    "security": BEARER_SECURITY,
    "requestBody": {"required": True, "content": {
        "application/json": {"schema": {"type": "object"}},
        "text/csv": {"schema": {"type": "string"}},
        "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
    }},
}


def mlflow_error(status: int, message: str, headers: dict[str, str] | None = None
                 ) -> JSONResponse:
    return JSONResponse({"error_code": _CODES.get(status, "INTERNAL_ERROR"), "message": message},
                        status_code=status, headers=headers)


class _Unsupported(InvalidInput):
    """A content type MLflow's scoring server does not take either (415)."""


@router.post("/invocations", response_model=Invocation, openapi_extra=_DOC)
async def invocations(request: Request) -> Response:
    """MLflow scoring body -> ``{"predictions"}`` from the only registered model (viewer)."""
    return await _invoke(request, None)


@router.post("/api/v1/models/{name}/invocations", response_model=Invocation,
             openapi_extra=_DOC)
async def model_invocations(request: Request, name: str) -> Response:
    """MLflow scoring body -> ``{"predictions"}`` from model ``name`` (viewer)."""
    return await _invoke(request, name)


async def _invoke(request: Request, name: str | None) -> Response:
    try:
        authorize(request, Role.viewer)
        app: Appliance = request.app.state.appliance
        body = await read_capped(request, MAX_BODY_BYTES, "the body")
        ctype = request.headers.get("content-type", "application/json")
        if len(body) > _INLINE_BYTES:
            answer = await run_in_threadpool(_score, app, name, body, ctype)
        else:
            answer = _score(app, name, body, ctype)
    except _Unsupported as exc:
        return mlflow_error(415, exc.message)
    except ApplianceError as exc:
        status = 400 if status_for(exc) == 422 else status_for(exc)
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Throttled) else None
        return mlflow_error(status, exc.message, headers)
    except Exception:  # never the appliance's error shape on these paths
        log.exception("unhandled error in /invocations")
        return mlflow_error(500, "internal error; see the server log")
    return JSONResponse(answer.model_dump(mode="json"))


def _score(app: Appliance, name: str | None, body: bytes, ctype: str) -> Invocation:
    media = ctype.split(";", 1)[0].strip().lower()
    if media == "application/json":
        try:
            payload = json.loads(body)
        except ValueError as exc:
            raise InvalidInput(f"the body is not JSON: {exc}") from exc
        records = records_of(payload)
    elif media == "text/csv" or is_parquet(body, ctype):
        records = parse_records(body, ctype)
    else:
        raise _Unsupported(f"this endpoint takes application/json, text/csv or "
                           f"application/vnd.apache.parquet; got {ctype[:100]!r}")
    return app.invocations.invoke(name, records)
