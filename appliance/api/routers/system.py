"""Health, metrics, who-am-I, login and the console's home summary."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from appliance import __version__
from appliance.api.deps import App, Viewer
from appliance.domain.auth import AccessToken, Me
from appliance.domain.system import Health, ServerRuntime, Summary, WatcherHeartbeat
from appliance.errors import InvalidInput

router = APIRouter()


class LoginBody(BaseModel):
    username: str = Field(max_length=256)
    password: str = Field(max_length=1024)


def health_of(app: App) -> Health:
    degraded = app.store.degraded_reason
    return Health(status="degraded" if degraded else "ok", version=__version__,
                  degraded_reason=degraded,
                  watcher=WatcherHeartbeat.model_validate(app.watcher.heartbeat),
                  leader=app.lease.leader)


@router.get("/healthz", tags=["system"])
async def healthz(app: App, request: Request) -> Health:
    """Liveness and store health; the only route that needs no credentials.

    ``server`` names the loop running this very request and the HTTP parser
    uvicorn was configured with (recorded by ``appliance serve``)."""
    health = health_of(app)
    http = getattr(request.app.state, "http_parser", None)
    if http is None:
        return health
    loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
    return health.model_copy(update={"server": ServerRuntime(loop=loop, http=http)})


@router.get("/metrics", tags=["system"])
def metrics(app: App, _: Viewer) -> Response:
    app.metrics.inbox_polls.set(app.watcher.heartbeat["polls"])
    return Response(app.metrics.render(), media_type="text/plain; version=0.0.4")


@router.post("/api/v1/auth/token", tags=["auth"])
async def login(app: App, request: Request) -> AccessToken:
    """Exchange a username and password (JSON or form) for a bearer token.

    Failed attempts are audited and slowed down per username and per client
    address: past the free failures the answer is 429 with ``Retry-After``."""
    ctype = request.headers.get("content-type", "")
    if "form" in ctype:
        form = await request.form()
        raw: dict[str, Any] = {k: form.get(k) for k in ("username", "password")}
    else:
        try:
            raw = await request.json()
        except ValueError:
            raise InvalidInput("send {\"username\", \"password\"} as JSON or a form") from None
    try:
        body = LoginBody.model_validate(raw)
    except ValueError:
        raise InvalidInput("send {\"username\", \"password\"} as JSON or a form") from None
    from starlette.concurrency import run_in_threadpool

    client = request.client.host if request.client else None
    return await run_in_threadpool(app.auth.login, body.username, body.password, client=client)


@router.get("/api/v1/auth/me", tags=["auth"])
def me(who: Viewer) -> Me:
    return Me(username=who.username, role=who.role)


@router.get("/api/v1/summary", tags=["system"])
def summary(app: App, _: Viewer) -> Summary:
    return Summary(counts=app.datasets.counts(), recent_ingests=app.ingest.recent(limit=20),
                   health=health_of(app))
