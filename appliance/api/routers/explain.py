"""Explanations: per-feature contributions for a logged request or posted rows (viewer,
as predict)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from appliance.api.bodies import read_capped
from appliance.api.deps import App, Viewer
from appliance.api.routers.serving import MAX_BODY_BYTES, parse_records
from appliance.domain.explain import Explanation, LoggedRequest, Method

router = APIRouter(prefix="/api/v1", tags=["explanations"])


@router.get("/predictions")
def recent_requests(app: App, _: Viewer, model: str = Query(..., max_length=64),
                    limit: int = Query(50, ge=1, le=1000)) -> list[LoggedRequest]:
    """A model's newest answered requests (shadow scores left out), newest first: the
    request ids an explanation can be asked for."""
    return app.explain.recent(model, limit=limit)


@router.get("/predictions/{request_id}/explanation")
async def explain_request(
    app: App, _: Viewer, request_id: str,
    model: str | None = Query(None, max_length=64, description=(
        "The model that answered, when one request id was used with several models.")),
    method: Method | None = Query(None, description=(
        "tree_shap or sampling_shapley; default: tree_shap where the version has a booster.")),
) -> Explanation:
    """Why a logged prediction got its score: contributions per input column, by the version
    that answered it. 404 for an unknown request id or a version without explanation
    artifacts (trained before they existed, or uploaded as ONNX)."""
    return await run_in_threadpool(app.explain.explain_request, request_id, model=model,
                                   method=method)


@router.post("/models/{name}/explain", openapi_extra={"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"oneOf": [
        {"type": "object"}, {"type": "array", "items": {"type": "object"}}]}},
    "text/csv": {"schema": {"type": "string"}}}}})
async def explain_rows(
    app: App, _: Viewer, name: str, request: Request,
    alias: str | None = Query(None, description="Explain with this alias's version "
                                                "(default champion)."),
    version: int | None = Query(None, description="Explain with this version number."),
    method: Method | None = Query(None, description=(
        "tree_shap or sampling_shapley; default: tree_shap where the version has a booster.")),
) -> list[Explanation]:
    """Explain posted rows (the predict body: JSON records or CSV, at most 100 rows) with the
    alias's or the given version; nothing is logged."""
    body = await read_capped(request, MAX_BODY_BYTES, "the body")
    records = parse_records(body, request.headers.get("content-type", ""))
    return await run_in_threadpool(app.explain.explain_rows, name, records, alias=alias,
                                   version=version, method=method)
