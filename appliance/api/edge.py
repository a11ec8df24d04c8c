"""The outermost layer of every request: the Host allowlist and request metrics.

Plain ASGI, not ``@app.middleware("http")``: Starlette's BaseHTTPMiddleware
costs about 0.3 ms a request each, which is most of a predict call's budget.
"""

from __future__ import annotations

import json
import time
from typing import Any

from appliance.api.errors import error_body
from appliance.metrics import Metrics

Scope = dict[str, Any]


class Edge:
    def __init__(self, app: Any, *, allowed_hosts: list[str], metrics: Metrics) -> None:
        self.app = app
        self.allowed = {h.lower() for h in allowed_hosts}
        self.any_host = "*" in self.allowed
        self.metrics = metrics

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

        async def capture(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = scope.get("route")
            self.metrics.http_latency.labels(
                method=scope["method"], route=getattr(route, "path", "unmatched"),
                status=str(status),
            ).observe(time.perf_counter() - started)


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
