"""Typed HTTP client for the appliance API.

Used by the console (``ui/``), the CLI in remote mode, tests and notebooks.
It never imports the store: everything goes over HTTP, and error shapes come
back as :class:`appliance.errors.RemoteError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from appliance.errors import RemoteError, Unauthenticated
from appliance.tracking import DEFAULT_BUFFER_SIZE, DEFAULT_FLUSH_INTERVAL, TrackedRun

API = "/api/v1"
# RemoteError kinds of a request that got no HTTP answer (status 0)
CONNECTION_REFUSED = "connection_refused"
TIMEOUT = "timeout"
CONNECTION_DROPPED = "connection_dropped"
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})

__all__ = ["API", "ApplianceClient", "TrackedRun"]


class ApplianceClient:
    """A thin client over ``/api/v1``.

    >>> c = ApplianceClient("http://127.0.0.1:8000")
    >>> c.login("admin", "secret")           # doctest: +SKIP
    >>> c.get("/datasets")                    # doctest: +SKIP
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    # -- plumbing ---------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApplianceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        url = path if path.startswith("/healthz") or path.startswith("/metrics") else API + path
        headers = {**self._headers(), **kwargs.pop("headers", {})}
        return _decode(self._send(method, url, headers=headers, **kwargs))

    def download(self, path: str) -> bytes:
        """Raw bytes of a GET (an ONNX file, an artifact); errors as for any request."""
        resp = self._send("GET", API + path, headers=self._headers())
        if resp.status_code >= 400:
            _decode(resp)
        return resp.content

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request; a transport failure becomes a :class:`RemoteError` with status 0.

        A read-only request whose kept-alive connection was dropped before any answer
        (the server closed it meanwhile) is sent once more on a fresh connection, as
        browsers do; nothing else is retried.
        """
        attempts = 2 if method in _IDEMPOTENT and "content" not in kwargs else 1
        for attempt in range(attempts):
            try:
                return self._http.request(method, url, **kwargs)
            except httpx.HTTPError as exc:
                error = transport_error(exc, self.base_url)
                if error.remote_kind != CONNECTION_DROPPED or attempt + 1 == attempts:
                    raise error from exc
        raise AssertionError("unreachable")

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return self.request("POST", path, json=json, **kwargs)

    def put(self, path: str, json: Any = None) -> Any:
        return self.request("PUT", path, json=json)

    def patch(self, path: str, json: Any = None) -> Any:
        return self.request("PATCH", path, json=json)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    # -- auth ---------------------------------------------------------------

    def login(self, username: str, password: str) -> dict[str, Any]:
        out: dict[str, Any] = self.post("/auth/token", json={"username": username, "password": password})
        self.token = out["access_token"]
        return out

    def me(self) -> dict[str, Any]:
        out: dict[str, Any] = self.get("/auth/me")
        return out

    # -- resources ------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        out: dict[str, Any] = self.request("GET", "/healthz")
        return out

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = self.get("/summary")
        return out

    def datasets(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self.get("/datasets")
        return out

    def dataset(self, name: str) -> dict[str, Any]:
        out: dict[str, Any] = self.get(f"/datasets/{name}")
        return out

    def versions(self, name: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self.get(f"/datasets/{name}/versions")
        return out

    def version(self, name: str, number: int) -> dict[str, Any]:
        out: dict[str, Any] = self.get(f"/datasets/{name}/versions/{number}")
        return out

    def version_rows(self, name: str, number: int, *, limit: int = 20, sample: bool = False,
                     seed: int = 0) -> dict[str, Any]:
        out: dict[str, Any] = self.get(f"/datasets/{name}/versions/{number}/rows", limit=limit,
                                       sample=str(sample).lower(), seed=seed)
        return out

    def contract(self, name: str, version: int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = self.get(f"/datasets/{name}/contract", version=version)
        return out

    def set_contract(self, name: str, yaml_text: str) -> dict[str, Any]:
        out: dict[str, Any] = self.put(f"/datasets/{name}/contract", json={"yaml": yaml_text})
        return out

    def revalidate(self, name: str, number: int) -> dict[str, Any]:
        out: dict[str, Any] = self.post(f"/datasets/{name}/versions/{number}/validate")
        return out

    def upload(
        self, path: Path, dataset: str, *, progress: Callable[[int], None] | None = None
    ) -> dict[str, Any]:
        """Stream a file as the raw request body (no multipart spooling on either side)."""

        def chunks() -> Iterator[bytes]:
            with path.open("rb") as fh:
                while chunk := fh.read(1024 * 1024):
                    if progress:
                        progress(len(chunk))
                    yield chunk

        out: dict[str, Any] = self.request(
            "POST",
            f"/datasets/{dataset}/files",
            params={"filename": path.name},
            content=chunks(),
            headers={"Content-Type": "application/octet-stream",
                     "Content-Length": str(path.stat().st_size)},
        )
        return out

    def ingests(self, dataset: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self.get("/ingests", dataset=dataset, limit=limit)
        return out

    def lineage(self, node: str, *, direction: str | None = None, depth: int | None = None,
                limit: int | None = None) -> dict[str, Any]:
        """The lineage graph around ``node`` (``dataset:customers@3``, ``model:churn@2``...):
        ``direction`` up|down|both, ``depth`` hops (1-10), at most ``limit`` nodes."""
        out: dict[str, Any] = self.get(f"/lineage/{quote(node, safe=':@')}", direction=direction,
                                       depth=depth, limit=limit)
        return out

    def audit(self, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self.get("/audit", limit=limit, offset=offset)
        return out

    def audit_verify(self) -> dict[str, Any]:
        out: dict[str, Any] = self.get("/audit/verify")
        return out

    def create_backup(self) -> dict[str, Any]:
        """Have the server write a backup into ``$APPLIANCE_HOME/backups/`` (admin)."""
        out: dict[str, Any] = self.post("/backups")
        return out

    def backups(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self.get("/backups")
        return out

    def erase(self, where: list[dict[str, Any]], *, dataset: str | None = None,
              dry_run: bool = False) -> dict[str, Any]:
        """Erase the rows matching ``where`` (``[{"column", "value"}]``, ANDed) (admin)."""
        out: dict[str, Any] = self.post("/erasures", json={"where": where, "dataset": dataset,
                                                           "dry_run": dry_run})
        return out

    def erasures(self, limit: int = 100) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self.get("/erasures", limit=limit)
        return out

    # -- live traffic and labelled metrics ------------------------------------------

    def traffic(self, model: str, *, minutes: int = 60, bucket_seconds: int = 60) -> dict[str, Any]:
        """Requests, requests/s and latency p50/p95/p99 per time bucket and version."""
        out: dict[str, Any] = self.get(f"/monitor/{quote(model, safe='')}/traffic",
                                       minutes=minutes, bucket_seconds=bucket_seconds)
        return out

    def live_metrics(self, model: str, *, hours: int = 168, bucket_hours: int = 24) -> dict[str, Any]:
        """Accuracy or RMSE and label coverage from delayed labels, per bucket and version."""
        out: dict[str, Any] = self.get(f"/monitor/{quote(model, safe='')}/metrics",
                                       hours=hours, bucket_hours=bucket_hours)
        return out

    def canary(self, model: str, **params: Any) -> dict[str, Any]:
        """The canary's verdict and its evidence (``alpha``, ``tau``, ``min_samples``)."""
        out: dict[str, Any] = self.get(f"/models/{quote(model, safe='')}/canary", **params)
        return out

    # -- scheduled jobs --------------------------------------------------------

    def jobs(self) -> dict[str, Any]:
        """Every scheduled job with its next and last run, and the job files' status."""
        out: dict[str, Any] = self.get("/jobs")
        return out

    def job_runs(self, job_id: str, *, status: str | None = None, limit: int = 50,
                 offset: int = 0) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status:
            params["status"] = status
        out: dict[str, Any] = self.get(f"/jobs/{quote(job_id, safe='')}/runs", **params)
        return out

    def job_run(self, job_id: str, run_id: str) -> dict[str, Any]:
        out: dict[str, Any] = self.get(
            f"/jobs/{quote(job_id, safe='')}/runs/{quote(run_id, safe='')}")
        return out

    def run_job(self, job_id: str) -> dict[str, Any]:
        out: dict[str, Any] = self.post(f"/jobs/{quote(job_id, safe='')}/run")
        return out

    def pause_job(self, job_id: str) -> dict[str, Any]:
        out: dict[str, Any] = self.post(f"/jobs/{quote(job_id, safe='')}/pause")
        return out

    def resume_job(self, job_id: str) -> dict[str, Any]:
        out: dict[str, Any] = self.post(f"/jobs/{quote(job_id, safe='')}/resume")
        return out

    # -- runs and tracking ------------------------------------------------------

    def start_run(
        self,
        name: str,
        experiment: str | None = None,
        params: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
        *,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        flush_interval: float | None = DEFAULT_FLUSH_INTERVAL,
    ) -> TrackedRun:
        """Start an external run and log to it through a buffer sent in batches.

        ``flush_interval`` seconds between background flushes (None: no timer;
        batches then leave at ``buffer_size`` points, ``flush()``, ``end()`` and exit).
        """
        body: dict[str, Any] = {"name": name}
        if experiment is not None:
            body["experiment"] = experiment
        if params:
            body["params"] = params
        if tags:
            body["tags"] = tags
        run: dict[str, Any] = self.post("/runs", json=body)
        return TrackedRun(self, run, params=params, buffer_size=buffer_size,
                          flush_interval=flush_interval)

    def runs(self, **filters: Any) -> dict[str, Any]:
        """``{"total", "items"}``: filters are status, kind, experiment, dataset, tag="k:v",
        q, sort ("-created_at", "-metric:acc", ...), limit and offset."""
        out: dict[str, Any] = self.get("/runs", **filters)
        return out

    def run(self, run_id: str) -> dict[str, Any]:
        out: dict[str, Any] = self.get(f"/runs/{run_id}")
        return out

    def run_metrics(self, run_id: str, key: str | None = None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self.get(f"/runs/{run_id}/metrics", key=key)
        return out

    def log_run_batch(self, run_id: str, batch: Mapping[str, Any]) -> dict[str, Any]:
        """One ``{"params", "metrics", "tags"}`` batch, stored whole or refused whole (400)."""
        out: dict[str, Any] = self.post(f"/runs/{run_id}/log", json=batch)
        return out

    def end_run(self, run_id: str, status: str = "succeeded", error: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = self.patch(f"/runs/{run_id}", json={"status": status, "error": error})
        return out

    def upload_artifact(self, run_id: str, path: Path, name: str | None = None) -> dict[str, Any]:
        """Stream a file as the raw body; stored content-addressed under ``name``."""

        def chunks() -> Iterator[bytes]:
            with path.open("rb") as fh:
                while chunk := fh.read(1024 * 1024):
                    yield chunk

        out: dict[str, Any] = self.request(
            "POST", f"/runs/{run_id}/artifacts", params={"name": name or path.name},
            content=chunks(), headers={"Content-Type": "application/octet-stream",
                                       "Content-Length": str(path.stat().st_size)},
        )
        return out

    def artifact(self, run_id: str, name: str) -> bytes:
        return self.download(f"/runs/{run_id}/artifacts/{quote(name, safe='')}")


def transport_error(exc: httpx.HTTPError, base_url: str) -> RemoteError:
    """What went wrong below HTTP, as a RemoteError of status 0 and a kind that says which:

    ``connection_refused`` (nothing listens there: the API is down or elsewhere),
    ``timeout`` (it is up but did not answer in time) or ``connection_dropped``
    (it closed the connection before answering). Only the first is an outage.
    """
    if isinstance(exc, httpx.TimeoutException):
        return RemoteError(0, TIMEOUT, f"{base_url} did not answer in time ({type(exc).__name__})")
    if isinstance(exc, httpx.ConnectError):
        return RemoteError(0, CONNECTION_REFUSED, f"cannot connect to {base_url}: {exc}")
    return RemoteError(0, CONNECTION_DROPPED,
                       f"{base_url} closed the connection before answering: {exc or type(exc).__name__}")


def _decode(resp: httpx.Response) -> Any:
    if resp.status_code < 400:
        if not resp.content:
            return None
        ctype = resp.headers.get("content-type", "")
        return resp.json() if "json" in ctype else resp.text
    try:
        err = resp.json()["error"]
        kind, message, detail = err["type"], err["message"], err.get("detail")
    except (ValueError, KeyError, TypeError):
        kind, message, detail = "http_error", resp.text[:500] or resp.reason_phrase, None
    if resp.status_code == 401:
        raise Unauthenticated(message, detail=detail)
    raise RemoteError(resp.status_code, kind, message, detail=detail)
