"""MLflow tracking routes (``/api/2.0/mlflow/...`` and ``/ajax-api/2.0/mlflow/...``):
experiments, runs, params, metrics, tags, history, search. Thin: each parses its
request, calls one translation in ``appliance.compat.mlflow.tracking``, answers JSON."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from appliance.api.mlflow.edge import MlflowRoute, appliance_of, body_of, caller, mlflow_error
from appliance.compat.mlflow import wire
from appliance.compat.mlflow.tracking import MlflowTracking
from appliance.domain.principal import Principal
from appliance.domain.roles import Role

T = TypeVar("T")
PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")
_SERVER_INFO = {"store_type": "appliance", "workspaces_enabled": False,
                "trace_archival_enabled": False, "multipart_uploads_enabled": False,
                "multipart_downloads_enabled": False,
                "presigned_upload_run_id_supported": False,
                "presigned_upload_model_id_supported": False, "features_enabled": {}}


async def _do(request: Request, role: Role,
              work: Callable[[MlflowTracking, Principal], T]) -> T:
    tracking = appliance_of(request).mlflow.tracking
    return await run_in_threadpool(lambda: work(tracking, caller(request, role)))


async def _log(request: Request, work: Callable[[MlflowTracking], None],
               run_id: str) -> JSONResponse:
    """A logging call, answered once its values are committed (in the threadpool: the
    commit blocks)."""
    await _do(request, Role.operator, lambda t, _: work(t))
    return JSONResponse({})


def _json(**fields: BaseModel | list[Any] | str | None) -> JSONResponse:
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if isinstance(value, BaseModel):
            out[key] = value.model_dump(mode="json", exclude_none=True)
        elif isinstance(value, list):
            out[key] = [v.model_dump(mode="json", exclude_none=True) for v in value]
        elif value is not None:
            out[key] = value
    return JSONResponse(out)


class _Id(BaseModel):
    experiment_id: str = ""


class _Name(BaseModel):
    experiment_name: str = ""


class _History(wire.RunRef):
    metric_key: str = ""


def router(prefix: str) -> APIRouter:
    r = APIRouter(prefix=prefix, route_class=MlflowRoute, include_in_schema=False)

    @r.post("/experiments/create")
    async def create_experiment(request: Request) -> JSONResponse:
        body = await body_of(request, wire.CreateExperiment)
        made = await _do(request, Role.operator, lambda t, who: t.create_experiment(body, by=who))
        return _json(experiment_id=made)

    @r.get("/experiments/get")
    async def get_experiment(request: Request) -> JSONResponse:
        body = await body_of(request, _Id)
        return _json(experiment=await _do(request, Role.viewer,
                                          lambda t, _: t.experiment(body.experiment_id)))

    @r.get("/experiments/get-by-name")
    async def get_experiment_by_name(request: Request) -> JSONResponse:
        body = await body_of(request, _Name)
        return _json(experiment=await _do(
            request, Role.viewer, lambda t, _: t.experiment_by_name(body.experiment_name)))

    @r.api_route("/experiments/search", methods=["GET", "POST"])
    async def search_experiments(request: Request) -> JSONResponse:
        body = await body_of(request, wire.SearchExperiments)
        page = await _do(request, Role.viewer, lambda t, _: t.search_experiments(body))
        return _json(experiments=page.experiments, next_page_token=page.next_page_token)

    @r.post("/experiments/set-experiment-tag")
    async def set_experiment_tag(request: Request) -> JSONResponse:
        body = await body_of(request, wire.ExperimentTag)
        await _do(request, Role.operator, lambda t, _: t.set_experiment_tag(body))
        return _json()

    @r.post("/runs/create")
    async def create_run(request: Request) -> JSONResponse:
        body = await body_of(request, wire.CreateRun)
        return _json(run=await _do(request, Role.operator,
                                   lambda t, who: t.create_run(body, by=who)))

    @r.get("/runs/get")
    async def get_run(request: Request) -> JSONResponse:
        body = await body_of(request, wire.RunRef)
        return _json(run=await _do(request, Role.viewer, lambda t, _: t.run(body.id)))

    @r.post("/runs/update")
    async def update_run(request: Request) -> JSONResponse:
        body = await body_of(request, wire.UpdateRun)
        return _json(run_info=await _do(request, Role.operator,
                                        lambda t, who: t.update_run(body, by=who)))

    @r.post("/runs/delete")
    async def delete_run(request: Request) -> JSONResponse:
        body = await body_of(request, wire.RunRef)
        await _do(request, Role.operator, lambda t, who: t.set_deleted(body.id, True, by=who))
        return _json()

    @r.post("/runs/restore")
    async def restore_run(request: Request) -> JSONResponse:
        body = await body_of(request, wire.RunRef)
        await _do(request, Role.operator, lambda t, who: t.set_deleted(body.id, False, by=who))
        return _json()

    @r.post("/runs/log-parameter")
    async def log_parameter(request: Request) -> JSONResponse:
        p = await body_of(request, wire.LogParam)
        batch = wire.LogBatch(run_id=p.id, params=[wire.KeyValue(key=p.key, value=p.value)])
        return await _log(request, lambda t: t.log_batch(batch), p.id)

    @r.post("/runs/log-metric")
    async def log_metric(request: Request) -> JSONResponse:
        body = await body_of(request, wire.LogMetric)
        return await _log(request, lambda t: t.log_metric(body), body.id)

    @r.post("/runs/log-batch")
    async def log_batch(request: Request) -> JSONResponse:
        body = await body_of(request, wire.LogBatch)
        if len(body.metrics) > 100:  # big batches: checked off the event loop
            await _do(request, Role.operator, lambda t, _: t.log_batch(body))
            return _json()
        return await _log(request, lambda t: t.log_batch(body), body.id)

    @r.post("/runs/set-tag")
    async def set_tag(request: Request) -> JSONResponse:
        p = await body_of(request, wire.SetTag)
        batch = wire.LogBatch(run_id=p.id, tags=[wire.KeyValue(key=p.key, value=p.value)])
        return await _log(request, lambda t: t.log_batch(batch), p.id)

    @r.post("/runs/log-inputs")
    async def log_inputs(request: Request) -> JSONResponse:
        body = await body_of(request, wire.LogInputs)
        await _do(request, Role.operator, lambda t, _: t.log_inputs(body))
        return _json()

    @r.post("/runs/delete-tag")
    async def delete_tag(request: Request) -> JSONResponse:
        body = await body_of(request, wire.DeleteTag)
        await _do(request, Role.operator, lambda t, _: t.delete_tag(body))
        return _json()

    @r.api_route("/runs/search", methods=["GET", "POST"])
    async def search_runs(request: Request) -> JSONResponse:
        body = await body_of(request, wire.SearchRuns)
        page = await _do(request, Role.viewer, lambda t, _: t.search_runs(body))
        return _json(runs=page.runs, next_page_token=page.next_page_token)

    @r.get("/metrics/get-history")
    async def metric_history(request: Request) -> JSONResponse:
        body = await body_of(request, _History)
        return _json(metrics=await _do(
            request, Role.viewer, lambda t, _: t.metric_history(body.id, body.metric_key)))

    return r


def server_info_router() -> APIRouter:
    r = APIRouter(prefix="/api/3.0/mlflow", route_class=MlflowRoute, include_in_schema=False)

    @r.get("/server-info")
    async def server_info() -> JSONResponse:
        return JSONResponse(_SERVER_INFO)

    return r


def unknown_router(prefix: str) -> APIRouter:
    """Every other path under an MLflow prefix: MLflow's 404, not ours."""
    r = APIRouter(prefix=prefix, route_class=MlflowRoute, include_in_schema=False)

    @r.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    async def unknown(request: Request, rest: str) -> JSONResponse:
        return mlflow_error(wire.ErrorCode.endpoint_not_found,
                            f"{request.method} {request.url.path} is not an endpoint this "
                            "appliance answers (see docs/compat/mlflow.md)", 404)

    return r
