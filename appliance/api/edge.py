"""The outermost layer of every request: the Host allowlist and request metrics.

Plain ASGI, not ``@app.middleware("http")``: Starlette's BaseHTTPMiddleware
costs about 0.3 ms a request each, which is most of a predict call's budget.
For the same reason ``POST /api/v1/models/{name}/predict`` and the V2
``POST /v2/models/{name}[/versions/{v}]/infer`` are handed to their routers'
lanes here, without route matching.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.requests import Request

from appliance.api.errors import error_body
from appliance.api.routers import serving, v2
from appliance.metrics import Metrics

Scope = dict[str, Any]
_MAX_CACHED = 4096  # latency children kept at hand (methods x routes x statuses)


class Edge:
    def __init__(self, app: Any, *, allowed_hosts: list[str], metrics: Metrics) -> None:
        self.app = app
        self.allowed = {h.lower() for h in allowed_hosts}
        self.any_host = "*" in self.allowed
        self.metrics = metrics
        # (method, route, status) -> the histogram child: labels() takes a lock and
        # checks every label on each call; the set of keys is small and bounded
        self._latency: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not self.any_host:
            name = _host_name(scope)
            if name not in self.allowed:  # a DNS-rebinding guard, before any route runs
                await _json(send, 400, error_body("invalid_host", f"host {name!r} is not allowed",
                                                  {"allowed": sorted(self.allowed)}))
                return
        started = time.perf_counter()
        status = 500
        lane = _lane(scope)

        async def capture(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            if lane is not None:
                response = await lane[1](scope, receive)
                await response(scope, receive, capture)
            else:
                await self.app(scope, receive, capture)
        finally:
            elapsed = time.perf_counter() - started
            route = lane[0] if lane is not None else \
                getattr(scope.get("route"), "path", "unmatched")
            key = (scope["method"], route, status)
            child = self._latency.get(key)
            if child is None:
                child = self.metrics.http_latency.labels(method=key[0], route=route,
                                                         status=str(status))
                if len(self._latency) < _MAX_CACHED:
                    self._latency[key] = child
            child.observe(elapsed)


_PREDICT = re.compile(r"/api/v1/models/([^/]+)/predict")
_V2_INFER = re.compile(r"/v2/models/([^/]+)(/versions/([^/]+))?/infer")
V2_INFER_PATHS = ("/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer")
Lane = tuple[str, Callable[[Scope, Any], Awaitable[Any]]]


def _lane(scope: Scope) -> Lane | None:
    """(route path, handler) of a ``POST .../predict`` or V2 ``.../infer``, which skip
    routing; else None.

    FastAPI matches a request against every route of every router in turn
    (~150 us for this app, half the cost of a one-row prediction); the scoring
    routes are where that matters, so the edge hands them straight to the
    route's own code (``serving.predict_lane``, ``v2.infer_lane``).
    """
    if scope["method"] != "POST" or scope.get("root_path"):
        return None
    path = scope["path"]
    match = _PREDICT.fullmatch(path)
    if match is not None:
        name = match.group(1)
        return serving.PREDICT_PATH, lambda s, r: serving.predict_lane(s, r, name)
    match = _V2_INFER.fullmatch(path)
    if match is not None:
        name, version = match.group(1), match.group(3)
        return (V2_INFER_PATHS[version is not None],
                lambda s, r: v2.infer_lane(Request(s, r), name, version))
    return None


def _host_name(scope: Scope) -> str:
    host = ""
    for key, value in scope.get("headers", ()):
        if key == b"host":
            host = value.decode("latin-1").lower()
            break
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return name.strip("[]")


async def _json(send: Any, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


def keep_alive_after_errors(app: Any) -> Any:
    """The app as uvicorn should run it: an answered 500 keeps its connection open.

    Starlette's outermost middleware answers an unhandled exception with the
    error handler's 500 and then raises it again "so servers can log it";
    uvicorn then closes the kept-alive connection under the client, whose next
    request on it (the console sends several per page) fails with "connection
    reset" as if the API were down. The handler has logged the traceback, so an
    exception raised after the whole answer was sent is dropped here; one raised
    before any answer still reaches the server.
    """

    async def run(scope: Scope, receive: Any, send: Any) -> None:
        answered = False

        async def tracking(message: MutableMapping[str, Any]) -> None:
            nonlocal answered
            if message["type"] == "http.response.body" and not message.get("more_body"):
                answered = True
            await send(message)

        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        try:
            await app(scope, receive, tracking)
        except Exception:
            if not answered:
                raise

    return run
