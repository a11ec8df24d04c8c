"""The model registry: versions, ONNX files, cards, aliases, approval and rollback."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from appliance.api.bodies import read_capped
from appliance.api.deps import App, Approver, Operator, Viewer
from appliance.domain.cards import ModelCard
from appliance.domain.outliers import OutlierReport
from appliance.domain.registry import (
    AliasChange,
    AliasEvent,
    AliasPointer,
    Model,
    ModelDetail,
    ModelVersion,
)
from appliance.registry.service import MAX_ONNX_BYTES

router = APIRouter(prefix="/api/v1/models", tags=["models"])


class AliasMove(BaseModel):
    version: int
    reason: str = ""
    force: bool = False


class Reason(BaseModel):
    reason: str = ""


@router.get("")
def list_models(app: App, _: Viewer) -> list[Model]:
    return app.registry.list_models()


@router.get("/{name}")
def show_model(app: App, _: Viewer, name: str) -> ModelDetail:
    return app.registry.show_model(name)


@router.post("/{name}/versions", status_code=201)
async def upload_version(
    app: App, who: Operator, name: str, request: Request,
    features: str | None = Query(None, max_length=100_000, description=(
        "Comma-separated names of the values of the model's one input of shape [batch, k], "
        "so predict takes records (and CSV columns) keyed by them.")),
) -> ModelVersion:
    """Register an ONNX file built elsewhere: refused unless it is one valid ONNX model
    that serving can feed (the reasons are listed in ``detail.problems``)."""
    body = await read_capped(request, MAX_ONNX_BYTES, "an ONNX model")
    names = None if features is None else [f.strip() for f in features.split(",")]
    return await run_in_threadpool(app.registry.register_upload, name, body, by=who,
                                   features=names)


@router.get("/{name}/versions")
def list_versions(app: App, _: Viewer, name: str) -> list[ModelVersion]:
    return app.registry.versions(name)


@router.get("/{name}/versions/{number}")
def show_version(app: App, _: Viewer, name: str, number: int) -> ModelVersion:
    return app.registry.version(name, number)


@router.get("/{name}/versions/{number}/card", response_model=ModelCard)
def model_card(app: App, _: Viewer, name: str, number: int,
               format: str = Query("json", pattern="^(json|md)$")) -> Response:
    # Both answers are Responses FastAPI passes through; ``response_model`` documents the
    # JSON one. The card holds stored floats (parity, metrics): json.dumps writes them as it
    # always has (1e-05), where pydantic's encoder would write 0.00001.
    run_id = app.registry.version(name, number).run_id
    run = app.runs.show(str(run_id)).model_dump(mode="json") if run_id else None
    if format == "md":
        return Response(app.registry.card_markdown(name, number, run=run),
                        media_type="text/markdown; charset=utf-8")
    return JSONResponse(app.registry.card(name, number, run=run).model_dump(mode="json"))


@router.get("/{name}/versions/{number}/onnx")
def download_onnx(app: App, _: Viewer, name: str, number: int) -> Response:
    return Response(app.registry.onnx_bytes(name, number), media_type="application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{name}-v{number}.onnx"'})


@router.post("/{name}/versions/{number}/approve")
def approve_version(app: App, who: Approver, name: str, number: int, body: Reason) -> AliasChange:
    return app.registry.approve(name, number, reason=body.reason, by=who)


@router.get("/{name}/aliases")
def list_aliases(app: App, _: Viewer, name: str) -> dict[str, int]:
    return app.registry.aliases(name)


@router.get("/{name}/aliases/{alias}")
def show_alias(app: App, _: Viewer, name: str, alias: str) -> AliasPointer:
    return app.registry.alias(name, alias)


@router.put("/{name}/aliases/{alias}")
def move_alias(app: App, who: Approver, name: str, alias: str, body: AliasMove) -> AliasChange:
    return app.registry.set_alias(name, alias, body.version, reason=body.reason, by=who,
                                  force=body.force)


@router.post("/{name}/aliases/{alias}/rollback")
def rollback_alias(app: App, who: Approver, name: str, alias: str, body: Reason) -> AliasChange:
    return app.registry.rollback(name, alias, reason=body.reason, by=who)


@router.get("/{name}/aliases/{alias}/history")
def alias_history(app: App, _: Viewer, name: str, alias: str) -> list[AliasEvent]:
    return app.registry.history(name, alias)


@router.get("/{name}/outliers")
def outliers(app: App, _: Viewer, name: str,
             window_hours: float = Query(24.0, gt=0, le=366 * 24),
             bucket_hours: float = Query(1.0, gt=0),
             examples: int = Query(20, ge=0, le=200)) -> OutlierReport:
    """The share of the model's served inputs its versions' outlier detectors flagged over
    the last ``window_hours``: per version, per ``bucket_hours`` bucket, and the most
    outlying flagged rows (cells cut to 200 characters). Versions without a detector count
    as rows, not as checked."""
    return app.outliers.report(name, window_hours=window_hours, bucket_hours=bucket_hours,
                               examples=examples)
