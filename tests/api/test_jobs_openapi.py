"""The jobs routes declare their response models: the OpenAPI schema describes every answer."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def openapi(appliance_app: Any) -> dict[str, Any]:
    from appliance.api.app import create_app

    schema: dict[str, Any] = create_app(appliance_app).openapi()
    return schema


@pytest.mark.parametrize(("method", "path", "status", "model"), [
    ("get", "/api/v1/jobs", "200", "JobList"),
    ("get", "/api/v1/jobs/{job_id}", "200", "Job"),
    ("get", "/api/v1/jobs/{job_id}/runs", "200", "JobRunPage"),
    ("get", "/api/v1/jobs/{job_id}/runs/{run_id}", "200", "JobRun"),
    ("post", "/api/v1/jobs/{job_id}/run", "202", "JobRun"),
    ("post", "/api/v1/jobs/{job_id}/pause", "200", "Job"),
    ("post", "/api/v1/jobs/{job_id}/resume", "200", "Job"),
])
def test_openapi_jobs_route_answers_its_model(openapi: dict[str, Any], method: str, path: str,
                                              status: str, model: str) -> None:
    content = openapi["paths"][path][method]["responses"][status]["content"]
    assert content["application/json"]["schema"] == {"$ref": f"#/components/schemas/{model}"}


def test_openapi_job_run_schema_is_the_answered_shape(openapi: dict[str, Any]) -> None:
    run = openapi["components"]["schemas"]["JobRun"]
    assert list(run["properties"]) == [
        "id", "job", "trigger", "status", "attempt", "idempotency_key", "scheduled_for",
        "created_at", "started_at", "finished_at", "heartbeat_at", "duration_ms", "error",
        "logs", "result", "retry_of"]
    assert "description" in run["properties"]["logs"]


def test_job_run_json_keeps_its_keys_and_timestamp_format(api: Any) -> None:
    import re

    queued = api.post("/api/v1/jobs/housekeeping.checkpoint/run")
    assert queued.status_code == 202, queued.text
    run = api.get(f"/api/v1/jobs/housekeeping.checkpoint/runs/{queued.json()['id']}").json()
    assert list(run) == list(queued.json()) == [
        "id", "job", "trigger", "status", "attempt", "idempotency_key", "scheduled_for",
        "created_at", "started_at", "finished_at", "heartbeat_at", "duration_ms", "error",
        "logs", "result", "retry_of"]
    stamp = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")  # as before the models
    assert stamp.fullmatch(queued.json()["created_at"]) and stamp.fullmatch(run["created_at"])
