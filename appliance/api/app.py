"""The FastAPI app factory: routers, the error mapping, Host allowlist, metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from appliance import __version__
from appliance.api import errors
from appliance.api.routers import alerts, datasets, governance, models, runs, serving, system
from appliance.runtime import Appliance


def create_app(appliance: Appliance) -> FastAPI:
    app = FastAPI(
        title="The appliance",
        version=__version__,
        description="Embedded single-node MLOps: datasets, contracts, lineage, audit.",
    )
    app.state.appliance = appliance
    errors.install(app)
    app.include_router(system.router)
    app.include_router(datasets.router)
    app.include_router(governance.router)
    app.include_router(runs.router)
    app.include_router(serving.router)
    app.include_router(alerts.router)
    app.include_router(models.router)

    metrics = appliance.metrics

    @app.middleware("http")
    async def _timing(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", "unmatched")
        metrics.http_latency.labels(
            method=request.method, route=template, status=str(response.status_code)
        ).observe(time.perf_counter() - started)
        return response

    allowed = {h.lower() for h in appliance.settings.allowed_hosts}

    @app.middleware("http")
    async def _host_allowlist(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """Refuse unknown Host headers (a DNS-rebinding guard), before any route runs."""
        host = request.headers.get("host", "").lower()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        name = name.strip("[]")
        if "*" not in allowed and name not in allowed:
            body = errors.error_body("invalid_host", f"host {name!r} is not allowed",
                                     {"allowed": sorted(allowed)})
            return JSONResponse(body, status_code=400)
        return await call_next(request)

    return app
