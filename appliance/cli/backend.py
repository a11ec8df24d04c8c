"""Where a CLI command runs: against a live server (HTTP) or the store itself.

DESIGN §2: the CLI talks to the API when a server holds the store; otherwise
it opens the store itself (taking the same lock, so a server started
meanwhile fails fast instead of corrupting anything). Both backends expose
the same methods, so each command is written once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

from pydantic import BaseModel

from appliance.cli.common import cli_settings, fail, os_user
from appliance.client import ApplianceClient
from appliance.config import Settings
from appliance.domain.principal import Principal
from appliance.domain.roles import Role
from appliance.errors import ApplianceError, RemoteError, StoreUnavailable, Unauthenticated

Progress = Callable[[int], None]


class Backend(Protocol):
    where: str

    def datasets(self) -> list[dict[str, Any]]: ...
    def dataset(self, name: str) -> dict[str, Any]: ...
    def versions(self, name: str) -> list[dict[str, Any]]: ...
    def contract(self, name: str) -> dict[str, Any]: ...
    def set_contract(self, name: str, yaml_text: str) -> dict[str, Any]: ...
    def ingest(self, path: Path, dataset: str, progress: Progress | None) -> dict[str, Any]: ...
    def add_user(self, username: str, password: str, role: str) -> dict[str, Any]: ...
    def create_token(self, username: str, name: str, days: float | None) -> dict[str, Any]: ...
    def sessions(self) -> list[dict[str, Any]]: ...
    def revoke(self, token_id: str) -> dict[str, Any]: ...
    def audit_verify(self) -> dict[str, Any]: ...
    def train(self, job_text: str) -> dict[str, Any]: ...
    def run(self, run_id: str) -> dict[str, Any]: ...
    def runs(self, **filters: Any) -> dict[str, Any]: ...
    def models(self) -> list[dict[str, Any]]: ...
    def model(self, name: str) -> dict[str, Any]: ...
    def set_alias(self, name: str, alias: str, version: int, reason: str,
                  force: bool) -> dict[str, Any]: ...
    def rollback(self, name: str, alias: str, reason: str) -> dict[str, Any]: ...
    def onnx(self, name: str, version: int) -> bytes: ...
    def predict(self, name: str, records: list[dict[str, Any]], alias: str | None,
                version: int | None) -> dict[str, Any]: ...
    def predict_csv(self, name: str, body: bytes, alias: str | None,
                    version: int | None) -> dict[str, Any]: ...
    def drift(self, name: str, window_hours: float, dataset_version: int | None,
              options: dict[str, Any]) -> dict[str, Any]: ...
    def canary(self, name: str, alpha: float | None, tau: float | None,
               min_samples: int | None) -> dict[str, Any]: ...
    def explain_request(self, request_id: str, method: str | None) -> dict[str, Any]: ...
    def explain_rows(self, name: str, body: list[dict[str, Any]] | bytes, alias: str | None,
                     version: int | None, method: str | None) -> list[dict[str, Any]]: ...
    def outliers(self, name: str, window_hours: float, examples: int) -> dict[str, Any]: ...
    def jobs(self) -> dict[str, Any]: ...
    def job_runs(self, job_id: str, status: str | None, limit: int) -> dict[str, Any]: ...
    def job_run(self, job_id: str, run_id: str) -> dict[str, Any]: ...
    def run_job(self, job_id: str) -> dict[str, Any]: ...
    def pause_job(self, job_id: str, paused: bool) -> dict[str, Any]: ...


class RemoteBackend:
    def __init__(self, client: ApplianceClient, pid: int) -> None:
        self.client = client
        self.where = f"server PID {pid} at {client.base_url}"

    def datasets(self) -> list[dict[str, Any]]:
        return self.client.datasets()

    def dataset(self, name: str) -> dict[str, Any]:
        return self.client.dataset(name)

    def versions(self, name: str) -> list[dict[str, Any]]:
        return self.client.versions(name)

    def contract(self, name: str) -> dict[str, Any]:
        return self.client.contract(name)

    def set_contract(self, name: str, yaml_text: str) -> dict[str, Any]:
        return self.client.set_contract(name, yaml_text)

    def ingest(self, path: Path, dataset: str, progress: Progress | None) -> dict[str, Any]:
        return self.client.upload(path, dataset, progress=progress)

    def add_user(self, username: str, password: str, role: str) -> dict[str, Any]:
        out: dict[str, Any] = self.client.post(
            "/users", json={"username": username, "password": password, "role": role}
        )
        return out

    def create_token(self, username: str, name: str, days: float | None) -> dict[str, Any]:
        out: dict[str, Any] = self.client.post(
            "/tokens", json={"username": username, "name": name, "expires_days": days}
        )
        return out

    def sessions(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self.client.get("/sessions")
        return out

    def revoke(self, token_id: str) -> dict[str, Any]:
        out: dict[str, Any] = self.client.delete(f"/tokens/{quote(token_id, safe='')}")
        return out

    def audit_verify(self) -> dict[str, Any]:
        return self.client.audit_verify()

    def train(self, job_text: str) -> dict[str, Any]:
        out: dict[str, Any] = self.client.post("/runs", json={"job": job_text})
        return out

    def run(self, run_id: str) -> dict[str, Any]:
        out: dict[str, Any] = self.client.get(f"/runs/{run_id}")
        return out

    def runs(self, **filters: Any) -> dict[str, Any]:
        out: dict[str, Any] = self.client.get("/runs", **filters)
        return out

    def models(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self.client.get("/models")
        return out

    def model(self, name: str) -> dict[str, Any]:
        out: dict[str, Any] = self.client.get(f"/models/{name}")
        return out

    def set_alias(self, name: str, alias: str, version: int, reason: str,
                  force: bool) -> dict[str, Any]:
        out: dict[str, Any] = self.client.put(
            f"/models/{name}/aliases/{alias}",
            json={"version": version, "reason": reason, "force": force})
        return out

    def rollback(self, name: str, alias: str, reason: str) -> dict[str, Any]:
        out: dict[str, Any] = self.client.post(f"/models/{name}/aliases/{alias}/rollback",
                                               json={"reason": reason})
        return out

    def onnx(self, name: str, version: int) -> bytes:
        return self.client.download(f"/models/{name}/versions/{version}/onnx")

    def canary(self, name: str, alpha: float | None, tau: float | None,
               min_samples: int | None) -> dict[str, Any]:
        return self.client.canary(name, alpha=alpha, tau=tau, min_samples=min_samples)

    def jobs(self) -> dict[str, Any]:
        return self.client.jobs()

    def job_runs(self, job_id: str, status: str | None, limit: int) -> dict[str, Any]:
        return self.client.job_runs(job_id, status=status, limit=limit)

    def job_run(self, job_id: str, run_id: str) -> dict[str, Any]:
        return self.client.job_run(job_id, run_id)

    def run_job(self, job_id: str) -> dict[str, Any]:
        return self.client.run_job(job_id)

    def pause_job(self, job_id: str, paused: bool) -> dict[str, Any]:
        return self.client.pause_job(job_id) if paused else self.client.resume_job(job_id)

    def drift(self, name: str, window_hours: float, dataset_version: int | None,
              options: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {"window_hours": window_hours, **options}
        if dataset_version is not None:
            body["dataset_version"] = dataset_version
        out: dict[str, Any] = self.client.post(f"/monitor/{name}/drift", json=body)
        return out

    def outliers(self, name: str, window_hours: float, examples: int) -> dict[str, Any]:
        out: dict[str, Any] = self.client.get(f"/models/{quote(name, safe='')}/outliers",
                                              window_hours=window_hours, examples=examples)
        return out

    def predict(self, name: str, records: list[dict[str, Any]], alias: str | None,
                version: int | None) -> dict[str, Any]:
        params = {k: v for k, v in (("alias", alias), ("version", version)) if v is not None}
        out: dict[str, Any] = self.client.request("POST", f"/models/{name}/predict",
                                                  json=records, params=params)
        return out

    def explain_request(self, request_id: str, method: str | None) -> dict[str, Any]:
        out: dict[str, Any] = self.client.get(f"/predictions/{quote(request_id, safe='')}"
                                              "/explanation", method=method)
        return out

    def explain_rows(self, name: str, body: list[dict[str, Any]] | bytes, alias: str | None,
                     version: int | None, method: str | None) -> list[dict[str, Any]]:
        """JSON records, or CSV bytes the server types by the model's signature."""
        params = {k: v for k, v in (("alias", alias), ("version", version), ("method", method))
                  if v is not None}
        out: list[dict[str, Any]] = (
            self.client.request("POST", f"/models/{name}/explain", content=body, params=params,
                                headers={"content-type": "text/csv"})
            if isinstance(body, bytes) else
            self.client.request("POST", f"/models/{name}/explain", json=body, params=params))
        return out

    def predict_csv(self, name: str, body: bytes, alias: str | None,
                    version: int | None) -> dict[str, Any]:
        """A CSV body as text: the server types each column by the model's signature."""
        params = {k: v for k, v in (("alias", alias), ("version", version)) if v is not None}
        out: dict[str, Any] = self.client.request(
            "POST", f"/models/{name}/predict", content=body, params=params,
            headers={"content-type": "text/csv"})
        return out


class LocalBackend:
    """Runs services in this process; the caller has the files, so acts as admin.

    Services answer typed results; the printers take JSON-shaped data, as the
    HTTP client gives them: each method converts once, here.
    """

    def __init__(self, appliance: Any) -> None:
        self.app = appliance
        self.who = Principal(username=f"local:{os_user()}", role=Role.admin)
        self.where = f"store {appliance.settings.db_path} (no server running)"

    def datasets(self) -> list[dict[str, Any]]:
        return [d.model_dump(mode="json") for d in self.app.datasets.list_datasets()]

    def dataset(self, name: str) -> dict[str, Any]:
        return _dumped(self.app.datasets.show(name))

    def versions(self, name: str) -> list[dict[str, Any]]:
        return [v.model_dump(mode="json") for v in self.app.datasets.versions(name)]

    def contract(self, name: str) -> dict[str, Any]:
        return _dumped(self.app.datasets.contract(name))

    def set_contract(self, name: str, yaml_text: str) -> dict[str, Any]:
        return _dumped(self.app.datasets.set_contract(name, yaml_text, by=self.who))

    def ingest(self, path: Path, dataset: str, progress: Progress | None) -> dict[str, Any]:
        with path.open("rb") as fh:
            return _dumped(self.app.ingest.ingest_stream(
                fh, file_name=path.name, dataset=dataset, who=self.who, progress=progress
            ))

    def add_user(self, username: str, password: str, role: str) -> dict[str, Any]:
        return _dumped(self.app.auth.add_user(username, password, role, by=self.who))

    def create_token(self, username: str, name: str, days: float | None) -> dict[str, Any]:
        return _dumped(self.app.auth.create_token(username, name, by=self.who, expires_days=days))

    def sessions(self) -> list[dict[str, Any]]:
        return [s.model_dump(mode="json") for s in self.app.auth.list_sessions()]

    def revoke(self, token_id: str) -> dict[str, Any]:
        return _dumped(self.app.auth.revoke_token(token_id, by=self.who))

    def audit_verify(self) -> dict[str, Any]:
        return _dumped(self.app.auditor.verify())

    def train(self, job_text: str) -> dict[str, Any]:
        return _dumped(self.app.training.submit(job_text, by=self.who))

    def run(self, run_id: str) -> dict[str, Any]:
        detail = self.app.runs.show(run_id)
        return _dumped(detail.with_model_version(self.app.registry.version_of_run(run_id)))

    def runs(self, **filters: Any) -> dict[str, Any]:
        return _dumped(self.app.runs.list_runs(**filters))

    def models(self) -> list[dict[str, Any]]:
        return [m.model_dump(mode="json") for m in self.app.registry.list_models()]

    def model(self, name: str) -> dict[str, Any]:
        return self.app.registry.show_model(name).model_dump(mode="json")

    def set_alias(self, name: str, alias: str, version: int, reason: str,
                  force: bool) -> dict[str, Any]:
        return self.app.registry.set_alias(name, alias, version, reason=reason, by=self.who,
                                           force=force).model_dump(mode="json")

    def rollback(self, name: str, alias: str, reason: str) -> dict[str, Any]:
        return self.app.registry.rollback(name, alias, reason=reason,
                                          by=self.who).model_dump(mode="json")

    def onnx(self, name: str, version: int) -> bytes:
        out: bytes = self.app.registry.onnx_bytes(name, version)
        return out

    def jobs(self) -> dict[str, Any]:
        self.app.jobs.reload()
        out: dict[str, Any] = self.app.jobs.list_jobs().model_dump(mode="json")
        return out

    def job_runs(self, job_id: str, status: str | None, limit: int) -> dict[str, Any]:
        self.app.jobs.reload()
        out: dict[str, Any] = self.app.jobs.runs(job_id, status=status,
                                                 limit=limit).model_dump(mode="json")
        return out

    def job_run(self, job_id: str, run_id: str) -> dict[str, Any]:
        out: dict[str, Any] = self.app.jobs.run(run_id).model_dump(mode="json")
        return out

    def run_job(self, job_id: str) -> dict[str, Any]:
        self.app.jobs.reload()
        out: dict[str, Any] = self.app.jobs.run_here(job_id, by=self.who).model_dump(mode="json")
        return out

    def pause_job(self, job_id: str, paused: bool) -> dict[str, Any]:
        self.app.jobs.reload()
        jobs = self.app.jobs
        job = jobs.pause(job_id, by=self.who) if paused else jobs.resume(job_id, by=self.who)
        out: dict[str, Any] = job.model_dump(mode="json")
        return out

    def canary(self, name: str, alpha: float | None, tau: float | None,
               min_samples: int | None) -> dict[str, Any]:
        self.app.jobs.reload()  # the job files' promote.canary settings
        out: dict[str, Any] = self.app.canary.verdict(
            name, alpha=alpha, tau=tau, min_samples=min_samples).model_dump(mode="json")
        return out

    def drift(self, name: str, window_hours: float, dataset_version: int | None,
              options: dict[str, Any]) -> dict[str, Any]:
        from appliance.domain.drift import DriftOptions

        return self.app.drift.check(name, window_hours=window_hours,
                                    dataset_version=dataset_version,
                                    options=DriftOptions.model_validate(options),
                                    by=self.who).model_dump(mode="json")

    def outliers(self, name: str, window_hours: float, examples: int) -> dict[str, Any]:
        return self.app.outliers.report(name, window_hours=window_hours, bucket_hours=min(
            1.0, window_hours), examples=examples).model_dump(mode="json")

    def predict(self, name: str, records: list[dict[str, Any]], alias: str | None,
                version: int | None) -> dict[str, Any]:
        return dict(self.app.serving.predict(name, records, alias=alias, version=version))

    def explain_request(self, request_id: str, method: str | None) -> dict[str, Any]:
        return _dumped(self.app.explain.explain_request(request_id, method=method))

    def explain_rows(self, name: str, body: list[dict[str, Any]] | bytes, alias: str | None,
                     version: int | None, method: str | None) -> list[dict[str, Any]]:
        from appliance.serve.csvbody import parse_csv

        records = parse_csv(body) if isinstance(body, bytes) else body
        return [_dumped(e) for e in self.app.explain.explain_rows(
            name, records, alias=alias, version=version, method=method)]

    def predict_csv(self, name: str, body: bytes, alias: str | None,
                    version: int | None) -> dict[str, Any]:
        from appliance.serve.csvbody import parse_csv

        out: dict[str, Any] = self.app.serving.predict(name, parse_csv(body), alias=alias,
                                                       version=version)
        return out


def _dumped(result: BaseModel) -> dict[str, Any]:
    """A service's typed result as the JSON the API would answer for it."""
    return result.model_dump(mode="json")


@contextmanager
def open_backend(settings: Settings) -> Iterator[Backend]:
    from appliance.store.db import ProcessLock  # not at import: `appliance --help` stays light

    pid = ProcessLock.holder(settings.lock_path)
    if pid is not None:
        token = os.environ.get("APPLIANCE_TOKEN")
        if not token:
            raise Unauthenticated(
                f"a server (PID {pid}) holds the store; set APPLIANCE_TOKEN to a token "
                "(POST /api/v1/auth/token, or `appliance users token`) to talk to it"
            )
        with ApplianceClient(settings.resolved_api_url, token=token, timeout=3600) as client:
            try:
                client.health()
            except RemoteError as exc:
                if exc.status != 0:  # it answered, just not with 200: let the command say why
                    raise
                raise StoreUnavailable(
                    f"a server (PID {pid}) holds the store but does not answer at "
                    f"{settings.resolved_api_url} ({exc.message}); set APPLIANCE_PORT or "
                    "APPLIANCE_API_URL to where it listens"
                ) from exc
            yield RemoteBackend(client, pid)
        return
    from appliance.runtime import build

    appliance = build(settings)
    try:
        yield LocalBackend(appliance)
    finally:
        appliance.close()


T = TypeVar("T")


def backend_for(home: Path | None) -> AbstractContextManager[Backend]:
    """The server holding the store of ``home`` (HTTP), or that store itself when none does."""
    return open_backend(cli_settings(home))


def call(home: Path | None, fn: Callable[[Backend], T]) -> T:
    """``fn(backend)`` against the server or the store of ``home``; an error exits 2 in one line."""
    try:
        with backend_for(home) as backend:
            return fn(backend)
    except ApplianceError as exc:
        fail(exc)
