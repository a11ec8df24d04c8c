"""MLflow's artifact proxy routes (``/api/2.0/mlflow-artifacts/artifacts``): upload,
list, download (``appliance.compat.mlflow.artifacts``)."""

from __future__ import annotations

import io

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from appliance.api.bodies import read_capped
from appliance.api.mlflow.edge import MlflowRoute, appliance_of, caller
from appliance.domain.roles import Role

PREFIX = "/api/2.0/mlflow-artifacts"


def router() -> APIRouter:
    r = APIRouter(prefix=PREFIX, route_class=MlflowRoute, include_in_schema=False)

    @r.put("/artifacts/{path:path}")
    async def upload(request: Request, path: str) -> JSONResponse:
        app = appliance_of(request)
        await run_in_threadpool(caller, request, Role.operator)
        data = await read_capped(request, app.settings.max_file_bytes, "an artifact")
        await run_in_threadpool(app.mlflow.artifacts.upload, path, io.BytesIO(data))
        return JSONResponse({})

    @r.get("/artifacts")
    async def listing(request: Request) -> JSONResponse:
        app = appliance_of(request)
        path = request.query_params.get("path")

        def run() -> list[dict[str, object]]:
            caller(request, Role.viewer)
            return [f.model_dump(exclude_none=True) for f in app.mlflow.artifacts.listing(path)]

        return JSONResponse({"files": await run_in_threadpool(run)})

    @r.get("/artifacts/{path:path}")
    async def download(request: Request, path: str) -> Response:
        app = appliance_of(request)

        def run() -> bytes:
            caller(request, Role.viewer)
            return app.mlflow.artifacts.download(path)

        return Response(await run_in_threadpool(run), media_type="application/octet-stream")

    return r
