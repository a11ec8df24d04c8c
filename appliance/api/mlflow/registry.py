"""MLflow registry routes: reads answered from our registry, writes refused with
MLflow's PERMISSION_DENIED and a message naming the appliance's way to register
(``appliance.compat.mlflow.registry``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from appliance.api.mlflow.edge import MlflowRoute, appliance_of, body_of, caller
from appliance.compat.mlflow.registry import MlflowRegistry, refuse_write
from appliance.domain.roles import Role

T = TypeVar("T")

WRITES = [
    ("POST", "/registered-models/create"), ("PATCH", "/registered-models/update"),
    ("POST", "/registered-models/rename"), ("DELETE", "/registered-models/delete"),
    ("POST", "/registered-models/set-tag"), ("DELETE", "/registered-models/delete-tag"),
    ("POST", "/registered-models/alias"), ("DELETE", "/registered-models/alias"),
    ("POST", "/model-versions/create"), ("PATCH", "/model-versions/update"),
    ("DELETE", "/model-versions/delete"), ("POST", "/model-versions/transition-stage"),
    ("POST", "/model-versions/set-tag"), ("DELETE", "/model-versions/delete-tag"),
]


class _Name(BaseModel):
    name: str = ""


class _Version(_Name):
    version: str = ""


class _Alias(_Name):
    alias: str = ""


class _Latest(_Name):
    stages: list[str] = Field(default_factory=list)


class _Search(BaseModel):
    filter: str | None = None
    max_results: int = Field(100, ge=1, le=200_000)
    page_token: str | None = None
    order_by: list[str] = Field(default_factory=list)


async def _read(request: Request, work: Callable[[MlflowRegistry], T]) -> T:
    reads = appliance_of(request).mlflow.registry

    def run() -> T:
        caller(request, Role.viewer)
        return work(reads)

    return await run_in_threadpool(run)


def _dump(model: BaseModel) -> dict[str, object]:
    return model.model_dump(mode="json", exclude_none=True)


def router(prefix: str) -> APIRouter:
    r = APIRouter(prefix=prefix, route_class=MlflowRoute, include_in_schema=False)

    @r.get("/registered-models/get")
    async def get_model(request: Request) -> JSONResponse:
        body = await body_of(request, _Name)
        found = await _read(request, lambda g: g.model(body.name))
        return JSONResponse({"registered_model": _dump(found)})

    @r.api_route("/registered-models/search", methods=["GET", "POST"])
    async def search_models(request: Request) -> JSONResponse:
        body = await body_of(request, _Search)
        found, token = await _read(request, lambda g: g.search_models(
            body.filter, body.max_results, body.page_token))
        out: dict[str, object] = {"registered_models": [_dump(m) for m in found]}
        if token:
            out["next_page_token"] = token
        return JSONResponse(out)

    @r.get("/registered-models/alias")
    async def by_alias(request: Request) -> JSONResponse:
        body = await body_of(request, _Alias)
        found = await _read(request, lambda g: g.by_alias(body.name, body.alias))
        return JSONResponse({"model_version": _dump(found)})

    @r.api_route("/registered-models/get-latest-versions", methods=["GET", "POST"])
    async def latest_versions(request: Request) -> JSONResponse:
        body = await body_of(request, _Latest)
        found = await _read(request, lambda g: g.latest(body.name, body.stages))
        return JSONResponse({"model_versions": [_dump(v) for v in found]})

    @r.get("/model-versions/get")
    async def get_version(request: Request) -> JSONResponse:
        body = await body_of(request, _Version)
        found = await _read(request, lambda g: g.version(body.name, body.version))
        return JSONResponse({"model_version": _dump(found)})

    @r.api_route("/model-versions/search", methods=["GET", "POST"])
    async def search_versions(request: Request) -> JSONResponse:
        body = await body_of(request, _Search)
        found = await _read(request, lambda g: g.search_versions(body.filter))
        return JSONResponse({"model_versions": [_dump(v) for v in found]})

    @r.get("/model-versions/get-download-uri")
    async def download_uri(request: Request) -> JSONResponse:
        body = await body_of(request, _Version)
        uri = await _read(request, lambda g: g.download_uri(body.name, body.version))
        return JSONResponse({"artifact_uri": uri})

    async def refuse(request: Request) -> JSONResponse:
        await run_in_threadpool(caller, request, Role.viewer)
        raise refuse_write()

    for method, path in WRITES:
        r.add_api_route(path, refuse, methods=[method], name=f"refuse {method} {path}")
    return r
