"""Runs: training jobs, external tracking, batches of params/metrics/tags, artifacts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from appliance.api.bodies import read_capped
from appliance.api.deps import App, Operator, Viewer
from appliance.domain.experiments import ExperimentSummary
from appliance.domain.runs import ArtifactRef, LoggedBatch, MetricPoint, Run, RunDetail, RunPage
from appliance.errors import InvalidInput

router = APIRouter(prefix="/api/v1", tags=["runs"])


class RunCreate(BaseModel):
    job: str | None = None          # a job file's YAML: a training run
    name: str | None = None         # else an external run, logged from outside
    experiment: str | None = None
    params: dict[str, Any] | None = None
    tags: dict[str, Any] | None = None


class RunEnd(BaseModel):
    status: str
    error: str | None = None


class LogBatch(BaseModel):
    params: dict[str, Any] | None = None
    metrics: list[dict[str, Any]] | None = None
    tags: dict[str, Any] | None = None


@router.post("/runs", status_code=201)
def create_run(app: App, who: Operator, body: RunCreate, response: Response) -> Run:
    if body.job is not None:
        response.status_code = 202
        return app.training.submit(body.job, by=who)
    if not body.name:
        raise InvalidInput("send {\"job\": \"<job YAML>\"} to train, or {\"name\": ...} to track")
    return app.runs.start_external(name=body.name, experiment=body.experiment,
                                   params=body.params, tags=body.tags, by=who)


@router.get("/runs")
def list_runs(
    app: App, _: Viewer,
    status: str | None = None, kind: str | None = None, experiment: str | None = None,
    dataset: str | None = None, tag: str | None = None, q: str | None = None,
    top_level: bool = Query(False, description="Leave out a search's trial runs (they are "
                                               "the `children` of their parent run)."),
    sort: str = "-created_at",
    limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0),
) -> RunPage:
    return app.runs.list_runs(status=status, kind=kind, experiment=experiment, dataset=dataset,
                              tag=tag, q=q, top_level=top_level, sort=sort, limit=limit,
                              offset=offset)


@router.get("/experiments", tags=["runs"])
def list_experiments(app: App, _: Viewer) -> list[ExperimentSummary]:
    """Experiments (oldest first) with their run counts: runs name one in ``experiment``
    (an MLflow client's experiments are these; the default one has the id "0")."""
    return app.experiments.listed()


@router.get("/runs/{run_id}")
def show_run(app: App, _: Viewer, run_id: str) -> RunDetail:
    return app.runs.show(run_id).with_model_version(app.registry.version_of_run(run_id))


@router.post("/runs/{run_id}/log")
def log_batch(app: App, _: Operator, run_id: str, body: LogBatch) -> LoggedBatch:
    return app.runs.log_batch(run_id, params=body.params, metrics=body.metrics, tags=body.tags)


@router.patch("/runs/{run_id}")
def end_run(app: App, who: Operator, run_id: str, body: RunEnd) -> Run:
    return app.runs.end(run_id, body.status, error=body.error, by=who)


@router.get("/runs/{run_id}/metrics")
def metric_history(app: App, _: Viewer, run_id: str, key: str | None = None) -> list[MetricPoint]:
    return app.runs.metric_history(run_id, key)


@router.post("/runs/{run_id}/artifacts", status_code=201)
async def upload_artifact(app: App, _: Operator, run_id: str, request: Request,
                          name: str = Query(..., description="The artifact's name")) -> ArtifactRef:
    import io

    body = await read_capped(request, app.settings.max_file_bytes, "an artifact")
    return await run_in_threadpool(app.runs.add_artifact, run_id, name, io.BytesIO(body))


@router.get("/runs/{run_id}/artifacts/{name}")
def download_artifact(app: App, _: Viewer, run_id: str, name: str) -> Response:
    return Response(app.runs.artifact_bytes(run_id, name), media_type="application/octet-stream")
