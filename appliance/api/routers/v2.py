"""The Open Inference Protocol (KServe V2) REST paths: a thin adapter over ``V2Service``.

Errors here have the protocol's shape, ``{"error": "<message>"}``, with the
appliance's statuses except that a request the model cannot take is 400 (as
the protocol asks) rather than 422. Health is public, like ``/healthz``;
everything else needs a viewer, as predict does. ``POST .../infer`` is also
reached by the edge's fast lane (``infer_lane``), without route matching.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from appliance.api.bodies import read_capped
from appliance.api.deps import BEARER_SECURITY, authorize
from appliance.api.errors import status_for
from appliance.domain.roles import Role
from appliance.domain.v2 import Liveness, ModelMetadata, Readiness, ServerMetadata
from appliance.errors import ApplianceError, Throttled, UnprocessableInput
from appliance.runtime import Appliance
from appliance.serve.v2 import version_number
from appliance.serve.v2codec import InferAnswer, parse_request

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v2", tags=["open inference protocol (v2)"])

MAX_BODY_BYTES = 64 * 1024 * 1024
_INLINE_BYTES = 64 * 1024  # bigger bodies are decoded and scored off the event loop
HEADER_LENGTH = "inference-header-content-length"
_AUTH = {"security": BEARER_SECURITY}


def v2_error(exc: ApplianceError) -> JSONResponse:
    status = 400 if isinstance(exc, UnprocessableInput) else status_for(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if isinstance(exc, Throttled):
        headers = {"Retry-After": str(exc.retry_after)}
    return JSONResponse({"error": exc.message}, status_code=status, headers=headers)


def _appliance(request: Request) -> Appliance:
    app: Appliance = request.app.state.appliance
    return app


@router.get("/health/live", response_model=Liveness)
async def live() -> Liveness:
    """The server answers (no credentials, like ``/healthz``)."""
    return Liveness(live=True)


@router.get("/health/ready", response_model=Readiness,
            responses={503: {"description": "the store is degraded"}})
async def ready(request: Request) -> Any:
    """The server can score and log (no credentials): 503 while the store is degraded."""
    if _appliance(request).store.degraded_reason:
        return JSONResponse({"ready": False}, status_code=503)
    return Readiness(ready=True)


@router.get("", response_model=ServerMetadata, openapi_extra=_AUTH)
async def server_metadata(request: Request) -> Any:
    """Server name, version and the protocol extensions it speaks (viewer)."""
    try:
        authorize(request, Role.viewer)
        return _appliance(request).v2.server()
    except ApplianceError as exc:
        return v2_error(exc)


@router.get("/models/{name}", response_model=ModelMetadata, openapi_extra=_AUTH)
def model_metadata(request: Request, name: str) -> Any:
    """Inputs and outputs of the version the alias (default champion) names (viewer)."""
    return _metadata(request, name, None)


@router.get("/models/{name}/versions/{version}", response_model=ModelMetadata,
            openapi_extra=_AUTH)
def version_metadata(request: Request, name: str, version: str) -> Any:
    """Inputs and outputs of one version (viewer)."""
    return _metadata(request, name, version)


def _metadata(request: Request, name: str, version: str | None) -> Any:
    try:
        authorize(request, Role.viewer)
        return _appliance(request).v2.metadata(name, version_number(version))
    except ApplianceError as exc:
        return v2_error(exc)


@router.get("/models/{name}/ready", openapi_extra=_AUTH)
def model_ready(request: Request, name: str) -> Response:
    """200 when the alias's version is loaded and answers; 404 V2 error otherwise (viewer)."""
    return _ready(request, name, None)


@router.get("/models/{name}/versions/{version}/ready", openapi_extra=_AUTH)
def version_ready(request: Request, name: str, version: str) -> Response:
    """200 when the version is loaded and answers (viewer)."""
    return _ready(request, name, version)


def _ready(request: Request, name: str, version: str | None) -> Response:
    try:
        authorize(request, Role.viewer)
        _appliance(request).v2.ready(name, version_number(version))
    except ApplianceError as exc:
        return v2_error(exc)
    return JSONResponse({"name": name, "ready": True})


_INFER_DOC: dict[str, Any] = {
    **_AUTH,
    "requestBody": {"required": True, "content": {
        "application/json": {"schema": {"type": "object"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
}


@router.post("/models/{name}/infer", response_model=None, openapi_extra=_INFER_DOC)
async def infer(request: Request, name: str) -> Response:
    """Score V2 tensors (JSON or binary) with the alias's version, as predict would (viewer)."""
    return await infer_lane(request, name, None)


@router.post("/models/{name}/versions/{version}/infer", response_model=None,
             openapi_extra=_INFER_DOC)
async def infer_version(request: Request, name: str, version: str) -> Response:
    """Score V2 tensors with one version (viewer)."""
    return await infer_lane(request, name, version)


async def infer_lane(request: Request, name: str, version: str | None) -> Response:
    """The infer route's own code; the edge calls it directly for ``POST .../infer``."""
    try:
        authorize(request, Role.viewer)
        number = version_number(version)
        body = await read_capped(request, MAX_BODY_BYTES, "the inference request")
        header_length = request.headers.get(HEADER_LENGTH)
        service = _appliance(request).v2
        if len(body) > _INLINE_BYTES:
            answer = await run_in_threadpool(_run, service, name, number, body, header_length)
        else:
            answer = _run(service, name, number, body, header_length)
    except ApplianceError as exc:
        return v2_error(exc)
    except Exception:  # never the appliance's error shape on a V2 path
        log.exception("unhandled error in V2 infer")
        return JSONResponse({"error": "internal error; see the server log"}, status_code=500)
    payload, json_length = answer.encode()
    if json_length is None:
        return Response(payload, media_type="application/json")
    return Response(payload, media_type="application/octet-stream",
                    headers={"Inference-Header-Content-Length": str(json_length)})


def _run(service: Any, name: str, version: int | None, body: bytes,
         header_length: str | None) -> InferAnswer:
    answer: InferAnswer = service.infer(name, version, parse_request(body, header_length))
    return answer
