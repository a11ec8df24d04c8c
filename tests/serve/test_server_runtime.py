"""`appliance serve` runs on uvloop and httptools (both locked), as /healthz reports."""

from __future__ import annotations

import httpx
from appliance_test_support import ServerProcess


def test_serve_runs_on_uvloop_and_httptools(live_server: ServerProcess) -> None:
    health = httpx.get(live_server.url + "/healthz", timeout=10).json()
    assert health["server"] == {"loop": "uvloop", "http": "httptools"}


def test_healthz_in_process_has_no_server_runtime(api: object) -> None:
    resp = api.get("/healthz")  # type: ignore[attr-defined]
    assert resp.status_code == 200 and resp.json()["server"] is None
