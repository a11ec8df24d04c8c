"""The FastAPI app factory: routers, the error mapping, Host allowlist, metrics."""

from __future__ import annotations

from fastapi import FastAPI

from appliance import __version__
from appliance.api import errors
from appliance.api.edge import Edge
from appliance.api.mlflow import artifacts as mlflow_artifacts
from appliance.api.mlflow import logged as mlflow_logged
from appliance.api.mlflow import registry as mlflow_registry
from appliance.api.mlflow import tracking as mlflow_tracking
from appliance.api.routers import (
    alerts,
    backups,
    datasets,
    erasures,
    explain,
    governance,
    invocations,
    jobs,
    lineage,
    models,
    monitor,
    runs,
    serving,
    system,
    v2,
)
from appliance.runtime import Appliance


def create_app(appliance: Appliance) -> FastAPI:
    # The API's own description is public on purpose (it is in docs/ too and holds no
    # data); APPLIANCE_API_DOCS=false takes the three pages away where that is policy.
    docs = appliance.settings.api_docs
    app = FastAPI(
        title="The appliance",
        version=__version__,
        description="Embedded single-node MLOps: datasets, contracts, lineage, audit.",
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
        # FastAPI's native OpenTelemetry asks the global providers on every request
        # (~30 us); nothing here exports traces, so it is off rather than checked
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.appliance = appliance
    errors.install(app)
    # the MLflow client's protocol (docs/compat/mlflow.md), kept out of /openapi.json;
    # first, so its one-value-a-request logging calls match early
    for prefix in mlflow_tracking.PREFIXES:
        app.include_router(mlflow_tracking.router(prefix))
        app.include_router(mlflow_registry.router(prefix))
        app.include_router(mlflow_logged.router(prefix))
    app.include_router(mlflow_artifacts.router())
    app.include_router(mlflow_tracking.server_info_router())
    app.include_router(system.router)
    app.include_router(datasets.router)
    app.include_router(lineage.router)
    app.include_router(governance.router)
    app.include_router(runs.router)
    app.include_router(serving.router)
    app.include_router(explain.router)
    app.include_router(alerts.router)
    app.include_router(monitor.router)
    app.include_router(models.router)
    app.include_router(jobs.router)
    app.include_router(backups.router)
    app.include_router(erasures.router)
    app.include_router(v2.router)
    app.include_router(invocations.router)
    # last: any other path under MLflow's prefixes answers MLflow's ENDPOINT_NOT_FOUND
    for prefix in (*mlflow_tracking.PREFIXES, mlflow_artifacts.PREFIX, "/api/3.0/mlflow"):
        app.include_router(mlflow_tracking.unknown_router(prefix))

    app.add_middleware(Edge, allowed_hosts=appliance.settings.allowed_hosts,
                       metrics=appliance.metrics)
    return app
