"""Predictions, delayed labels and live performance per model version."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from appliance.api.bodies import read_capped
from appliance.api.deps import App, Approver, Operator, Viewer
from appliance.errors import UnprocessableInput

router = APIRouter(prefix="/api/v1/models", tags=["serving"])

MAX_BODY_BYTES = 5 * 1024 * 1024
_INLINE_ROWS = 256  # bigger requests are scored off the event loop


async def _body(request: Request) -> bytes:
    return await read_capped(request, MAX_BODY_BYTES,
                             "the body (score big files with `appliance predict`)")


def _records(body: bytes, content_type: str) -> Any:
    if "csv" in content_type:
        import polars as pl

        try:
            return pl.read_csv(body).to_dicts()
        except Exception as exc:  # polars raises several kinds for a bad CSV
            raise UnprocessableInput(f"the CSV body cannot be read: {exc}"[:500]) from exc
    try:
        return json.loads(body)
    except ValueError as exc:
        raise UnprocessableInput(f"the body is not JSON: {exc}") from exc


@router.post("/{name}/predict")
async def predict(app: App, _: Viewer, name: str, request: Request,
                  alias: str | None = None, version: int | None = None) -> dict[str, Any]:
    """Score JSON records (one object or an array) or a CSV body with the aliased version."""
    records = _records(await _body(request), request.headers.get("content-type", ""))
    if isinstance(records, list) and len(records) > _INLINE_ROWS:
        out: dict[str, Any] = await run_in_threadpool(
            app.serving.predict, name, records, alias=alias, version=version)
        return out
    return app.serving.predict(name, records, alias=alias, version=version)


@router.post("/{name}/feedback")
async def feedback(app: App, _: Operator, name: str, request: Request) -> dict[str, Any]:
    """Delayed ground truth: ``[{"request_id", "label"}]``, joined to the prediction log."""
    labels = _records(await _body(request), "application/json")
    out: dict[str, Any] = await run_in_threadpool(app.serving.feedback, name, labels)
    return out


@router.get("/{name}/performance")
def performance(app: App, _: Viewer, name: str,
                hours: float = Query(24.0, gt=0, le=24 * 365)) -> dict[str, Any]:
    """Live metrics from joined labels, per model version, over the last ``hours``."""
    return app.serving.performance(name, hours=hours)


@router.get("/{name}/routing")
def get_routing(app: App, _: Viewer, name: str) -> dict[str, Any]:
    """Canary and shadow settings for the champion's traffic, and requests served per role."""
    return app.serving.routing(name)


@router.put("/{name}/routing")
async def put_routing(app: App, who: Approver, name: str, request: Request) -> dict[str, Any]:
    """Body ``{"canary": {"version", "percent", "key"?}|null, "shadow": {"version"}|null}``."""
    config = _records(await _body(request), "application/json")
    out: dict[str, Any] = await run_in_threadpool(app.serving.set_routing, name, config, by=who)
    return out
