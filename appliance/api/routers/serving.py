"""Predictions, delayed labels and live performance per model version."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from appliance.api.bodies import is_parquet, parquet_records, read_capped
from appliance.api.deps import BEARER_SECURITY, App, Approver, Operator, Viewer, authorize
from appliance.api.errors import error_response, internal_error_response
from appliance.domain.canary import CanaryVerdict
from appliance.domain.roles import Role
from appliance.domain.serving import Feedback, LivePerformance, ModelRouting, Prediction
from appliance.errors import ApplianceError, UnprocessableInput
from appliance.runtime import Appliance
from appliance.serve.csvbody import CsvRecords, parse_csv
from appliance.serve.service import MAX_ROWS

router = APIRouter(prefix="/api/v1/models", tags=["serving"])

MAX_BODY_BYTES = 5 * 1024 * 1024
_INLINE_ROWS = 256  # bigger requests are scored off the event loop
_INLINE_BYTES = 64 * 1024  # bigger bodies are decoded off the event loop


async def _body(request: Request) -> bytes:
    return await read_capped(request, MAX_BODY_BYTES,
                             "the body (score big files with `appliance predict`)")


def parse_records(body: bytes, content_type: str) -> Any:
    """A predict body as records: Parquet, CSV (typed later by the signature) or JSON."""
    if is_parquet(body, content_type):
        return parquet_records(body, MAX_ROWS)
    if "csv" in content_type:
        return parse_csv(body)  # text until the model's signature types it
    try:
        return json.loads(body)
    except ValueError as exc:
        raise UnprocessableInput(f"the body is not JSON: {exc}") from exc


def _query(request: Request) -> tuple[str | None, int | None]:
    """``alias`` and ``version`` from the query string, checked as FastAPI would."""
    params = request.query_params
    alias, raw = params.get("alias"), params.get("version")
    if raw is None:
        return alias, None
    try:
        return alias, int(raw)
    except ValueError:
        raise UnprocessableInput("version must be an integer",
                                 detail={"field": "version", "value": raw[:100]}) from None


_PREDICT_DOC: dict[str, Any] = {
    "security": BEARER_SECURITY,
    "parameters": [
        {"name": "alias", "in": "query", "required": False, "schema": {"type": "string"},
         "description": "Score with the version this alias names (default champion)."},
        {"name": "version", "in": "query", "required": False, "schema": {"type": "integer"},
         "description": "Score with this version number."},
    ],
    "requestBody": {"required": True, "content": {
        "application/json": {"schema": {"oneOf": [
            {"type": "object"}, {"type": "array", "items": {"type": "object"}}]}},
        "text/csv": {"schema": {"type": "string"}},
        "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
    }},
}


PREDICT_PATH = "/api/v1/models/{name}/predict"


# the route answers JSONResponse itself (no response_model: the hot path encodes once);
# ``responses`` only documents the answer's schema
@router.post("/{name}/predict", response_model=None, openapi_extra=_PREDICT_DOC,
             responses={200: {"model": Prediction, "description": "Successful Response"}})
async def predict(request: Request, name: str) -> JSONResponse:
    """Score JSON records (one object or an array), a CSV or a Parquet body (viewer).

    The hot path: auth is checked by ``authorize`` (the ``Viewer`` rule) rather
    than by dependencies, and the answer is encoded once, straight to JSON.
    In the running app the edge (``appliance.api.edge``) sends these requests
    to ``predict_lane`` without routing them; both end in ``score``.
    """
    return await score(request, name)


async def score(request: Request, name: str) -> JSONResponse:
    authorize(request, Role.viewer)
    app: Appliance = request.app.state.appliance
    alias, version = _query(request)
    body = await _body(request)
    ctype = request.headers.get("content-type", "")
    if len(body) > _INLINE_BYTES:
        records = await run_in_threadpool(parse_records, body, ctype)
    else:
        records = parse_records(body, ctype)
    if isinstance(records, list | CsvRecords) and len(records) > _INLINE_ROWS:
        out = await run_in_threadpool(
            app.serving.predict, name, records, alias=alias, version=version)
    else:
        out = app.serving.predict(name, records, alias=alias, version=version)
    return JSONResponse(out)


async def predict_lane(scope: dict[str, Any], receive: Any, name: str) -> Response:
    """``POST /api/v1/models/{name}/predict`` without routing: the same ``score``, and
    errors answered by the app's own handlers (``appliance.api.errors``)."""
    try:
        return await score(Request(scope, receive), name)
    except ApplianceError as exc:
        return error_response(exc)
    except Exception:
        return internal_error_response()


@router.post("/{name}/feedback")
async def feedback(app: App, _: Operator, name: str, request: Request) -> Feedback:
    """Delayed ground truth: ``[{"request_id", "label"}]``, joined to the prediction log."""
    labels = parse_records(await _body(request), "application/json")
    return await run_in_threadpool(app.serving.feedback, name, labels)


@router.get("/{name}/performance")
def performance(app: App, _: Viewer, name: str,
                hours: float = Query(24.0, gt=0, le=24 * 365)) -> LivePerformance:
    """Live metrics from joined labels, per model version, over the last ``hours``."""
    return app.serving.performance(name, hours=hours)


@router.get("/{name}/routing")
def get_routing(app: App, _: Viewer, name: str) -> ModelRouting:
    """Canary and shadow settings for the champion's traffic, and requests served per role."""
    return app.serving.routing(name)


@router.put("/{name}/routing")
async def put_routing(app: App, who: Approver, name: str, request: Request) -> ModelRouting:
    """Body ``{"canary": {"version", "percent", "key"?}|null, "shadow": {"version"}|null}``."""
    config = parse_records(await _body(request), "application/json")
    return await run_in_threadpool(app.serving.set_routing, name, config, by=who)


@router.get("/{name}/canary")
def canary_verdict(app: App, _: Viewer, name: str,
                   alpha: float | None = Query(None, gt=0, lt=0.5),
                   tau: float | None = Query(None, gt=0, le=10),
                   min_samples: int | None = Query(None, ge=2, le=1_000_000)
                   ) -> CanaryVerdict:
    """The canary's verdict against the champion from delayed labels (a mixture SPRT):
    canary_better, canary_worse or not_yet_conclusive, with the evidence. Settings not
    given are the job file's ``promote.canary``, else alpha 0.05, tau 0.1, 200 per arm."""
    return app.canary.verdict(name, alpha=alpha, tau=tau, min_samples=min_samples)
