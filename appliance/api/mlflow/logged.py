"""MLflow 3's logged-model routes (``/logged-models``, ``/runs/outputs``) over
``appliance.compat.mlflow.logged``: what log_model and autolog call before uploading
a model's files."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from appliance.api.mlflow.edge import MlflowRoute, appliance_of, body_of, caller
from appliance.compat.mlflow import wire
from appliance.compat.mlflow.logged import MlflowLoggedModels
from appliance.domain.principal import Principal
from appliance.domain.roles import Role

T = TypeVar("T")


async def _do(request: Request, role: Role,
              work: Callable[[MlflowLoggedModels, Principal], T]) -> T:
    logged = appliance_of(request).mlflow.logged
    return await run_in_threadpool(lambda: work(logged, caller(request, role)))


def _model(m: wire.LoggedModel) -> JSONResponse:
    return JSONResponse({"model": m.model_dump(mode="json", exclude_none=True)})


def router(prefix: str) -> APIRouter:
    r = APIRouter(prefix=prefix, route_class=MlflowRoute, include_in_schema=False)

    @r.post("/logged-models")
    async def create(request: Request) -> JSONResponse:
        body = await body_of(request, wire.CreateLoggedModel)
        return _model(await _do(request, Role.operator, lambda g, who: g.create(body, by=who)))

    @r.post("/logged-models/search")
    async def search(request: Request) -> JSONResponse:
        body = await body_of(request, wire.SearchLoggedModels)
        found, token = await _do(request, Role.viewer, lambda g, _: g.search(body))
        out: dict[str, object] = {
            "models": [m.model_dump(mode="json", exclude_none=True) for m in found]}
        if token:
            out["next_page_token"] = token
        return JSONResponse(out)

    @r.get("/logged-models/{model_id}")
    async def get(request: Request, model_id: str) -> JSONResponse:
        return _model(await _do(request, Role.viewer, lambda g, _: g.get(model_id)))

    @r.patch("/logged-models/{model_id}")
    async def finalize(request: Request, model_id: str) -> JSONResponse:
        body = await body_of(request, wire.FinalizeLoggedModel)
        return _model(await _do(request, Role.operator,
                                lambda g, _: g.finalize(model_id, body.status)))

    @r.patch("/logged-models/{model_id}/tags")
    async def set_tags(request: Request, model_id: str) -> JSONResponse:
        body = await body_of(request, wire.LoggedModelTags)
        await _do(request, Role.operator, lambda g, _: g.set_tags(model_id, body.tags))
        return JSONResponse({})

    @r.post("/logged-models/{model_id}/params")
    async def log_params(request: Request, model_id: str) -> JSONResponse:
        body = await body_of(request, wire.LoggedModelParams)
        await _do(request, Role.operator, lambda g, _: g.log_params(model_id, body.params))
        return JSONResponse({})

    @r.post("/runs/outputs")
    async def outputs(request: Request) -> JSONResponse:
        body = await body_of(request, wire.LogOutputs)
        await _do(request, Role.operator, lambda g, _: g.check_outputs(body))
        return JSONResponse({})

    return r
