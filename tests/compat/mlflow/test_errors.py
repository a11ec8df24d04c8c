"""MLflow's error shape on MLflow's paths: unknown things, a viewer writing, bad bodies,
hostile artifact paths, oversize uploads, basic auth; never a 500, never /api/v1's shape."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from appliance_test_support import ADMIN_PASSWORD, make_settings

API = "/api/2.0/mlflow"
ART = "/api/2.0/mlflow-artifacts/artifacts"


def _error(r: Any, code: str, status: int) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error_code", "message"} and body["error_code"] == code, body
    return str(body["message"])


@pytest.fixture
def small_api(tmp_path: Any) -> Iterator[Any]:
    """The app with a 1 KiB file limit, logged in as admin."""
    from appliance_test_support import logged_in
    from fastapi.testclient import TestClient

    from appliance.api.app import create_app
    from appliance.runtime import build

    app = build(make_settings(tmp_path / "home", max_file_bytes=1024))
    with TestClient(create_app(app)) as c:
        logged_in(c)
        yield c
    app.close()


def _run(api: Any, experiment_id: str = "0") -> dict[str, Any]:
    r = api.post(f"{API}/runs/create", json={"experiment_id": experiment_id, "run_name": "r1"})
    assert r.status_code == 200, r.text
    return dict(r.json()["run"]["info"])


def test_get_unknown_run_experiment_and_model_answer_resource_does_not_exist(api: Any) -> None:
    _error(api.get(f"{API}/runs/get", params={"run_id": "0" * 32}),
           "RESOURCE_DOES_NOT_EXIST", 404)
    _error(api.get(f"{API}/runs/get", params={"run_id": "not-a-run"}),
           "RESOURCE_DOES_NOT_EXIST", 404)
    _error(api.get(f"{API}/experiments/get", params={"experiment_id": "42"}),
           "RESOURCE_DOES_NOT_EXIST", 404)
    _error(api.get(f"{API}/experiments/get-by-name", params={"experiment_name": "nope"}),
           "RESOURCE_DOES_NOT_EXIST", 404)
    _error(api.get(f"{API}/registered-models/get", params={"name": "nope"}),
           "RESOURCE_DOES_NOT_EXIST", 404)
    _error(api.get(f"{API}/registered-models/alias", params={"name": "nope", "alias": "x"}),
           "RESOURCE_DOES_NOT_EXIST", 404)
    _error(api.post(f"{API}/runs/create", json={"experiment_id": "99"}),
           "RESOURCE_DOES_NOT_EXIST", 404)


def test_unknown_endpoint_answers_mlflow_endpoint_not_found(api: Any) -> None:
    _error(api.post(f"{API}/traces/start"), "ENDPOINT_NOT_FOUND", 404)
    _error(api.get("/api/2.0/mlflow-artifacts/nothing"), "ENDPOINT_NOT_FOUND", 404)


def test_bad_payloads_answer_invalid_parameter_value(api: Any) -> None:
    run = _run(api)
    for body in ([1, 2], {"run_id": run["run_id"], "key": "m", "value": "high"},
                 {"run_id": run["run_id"], "key": "m", "value": 1, "step": "x"},
                 {"run_id": run["run_id"], "key": "bad:key", "value": 1.0},
                 {"run_id": run["run_id"], "key": "m", "value": "NaN"}):
        _error(api.post(f"{API}/runs/log-metric", json=body), "INVALID_PARAMETER_VALUE", 400)
    _error(api.post(f"{API}/runs/log-batch", content=b"{not json",
                    headers={"content-type": "application/json"}),
           "INVALID_PARAMETER_VALUE", 400)
    _error(api.post(f"{API}/runs/update", json={"run_id": run["run_id"], "status": "DONE"}),
           "INVALID_PARAMETER_VALUE", 400)
    _error(api.post(f"{API}/runs/search", json={"experiment_ids": ["0"],
                                                "filter": "metrics.auc >> 1"}),
           "INVALID_PARAMETER_VALUE", 400)
    _error(api.post(f"{API}/runs/search", json={"experiment_ids": ["0"],
                                                "filter": "attributes.nope = 'x'"}),
           "INVALID_PARAMETER_VALUE", 400)
    _error(api.post(f"{API}/experiments/create", json={"name": "bad:name"}),
           "INVALID_PARAMETER_VALUE", 400)
    # nothing of a refused batch was stored
    got = api.get(f"{API}/runs/get", params={"run_id": run["run_id"]}).json()["run"]
    assert got["data"]["metrics"] == []


def test_log_batch_refuses_a_bad_entry_and_stores_nothing(api: Any) -> None:
    run = _run(api)
    r = api.post(f"{API}/runs/log-batch", json={
        "run_id": run["run_id"], "params": [{"key": "a", "value": "1"}],
        "metrics": [{"key": "m", "value": 1.0, "timestamp": 0, "step": 0},
                    {"key": "m", "value": "Infinity", "timestamp": 0, "step": 1}]})
    _error(r, "INVALID_PARAMETER_VALUE", 400)
    data = api.get(f"{API}/runs/get", params={"run_id": run["run_id"]}).json()["run"]["data"]
    assert data["metrics"] == [] and data["params"] == []


def test_logging_to_a_finished_run_answers_invalid_state(api: Any) -> None:
    run = _run(api)
    assert api.post(f"{API}/runs/update", json={"run_id": run["run_id"],
                                                "status": "FINISHED"}).status_code == 200
    _error(api.post(f"{API}/runs/log-metric", json={"run_id": run["run_id"], "key": "m",
                                                    "value": 1.0, "timestamp": 0}),
           "INVALID_STATE", 400)
    _error(api.post(f"{API}/runs/update", json={"run_id": run["run_id"], "status": "RUNNING"}),
           "INVALID_STATE", 400)


def test_viewer_writing_answers_permission_denied(api: Any, appliance_app: Any) -> None:
    appliance_app.auth.add_user("vera", "a-long-viewer-password", "viewer", by="test")
    token = appliance_app.auth.create_token("vera", "t", by="test").token
    viewer = {"Authorization": f"Bearer {token}"}
    run = _run(api)
    _error(api.post(f"{API}/runs/create", json={"experiment_id": "0"}, headers=viewer),
           "PERMISSION_DENIED", 403)
    _error(api.post(f"{API}/runs/log-metric", json={"run_id": run["run_id"], "key": "m",
                                                    "value": 1.0}, headers=viewer),
           "PERMISSION_DENIED", 403)
    _error(api.put(f"{ART}/0/{run['run_id']}/artifacts/a.txt", content=b"x", headers=viewer),
           "PERMISSION_DENIED", 403)
    assert api.get(f"{API}/runs/get", params={"run_id": run["run_id"]},
                   headers=viewer).status_code == 200
    _error(api.get(f"{API}/runs/get", params={"run_id": run["run_id"]},
                   headers={"Authorization": "Bearer wrong"}), "UNAUTHENTICATED", 401)


def test_basic_auth_username_and_password_as_the_mlflow_client_sends(api: Any) -> None:
    def basic(user: str, password: str) -> dict[str, str]:
        pair = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": f"Basic {pair}"}

    r = api.post(f"{API}/runs/create", json={"experiment_id": "0"},
                 headers=basic("admin", ADMIN_PASSWORD))
    assert r.status_code == 200 and r.json()["run"]["info"]["user_id"] == "admin"
    _error(api.get(f"{API}/experiments/get", params={"experiment_id": "0"},
                   headers=basic("admin", "wrong-password")), "UNAUTHENTICATED", 401)
    _error(api.get(f"{API}/experiments/get", params={"experiment_id": "0"},
                   headers={"Authorization": "Basic %%%"}), "UNAUTHENTICATED", 401)


@pytest.mark.parametrize("path", [
    "0/{run}/artifacts/../../../etc/passwd", "0/{run}/artifacts/a/%2E/b",
    "0/{run}/artifacts/a//b", "0/{run}/artifacts/a\\b", "0/{run}/artifacts/a%00b",
    "0/{run}/artifacts/%2E%2E/x", "0/{run}/artifacts/a%0Ab",
])
def test_hostile_artifact_paths_are_refused(api: Any, path: str) -> None:
    run = _run(api)
    url = f"{ART}/{path.format(run=run['run_id'])}"
    r = api.put(url, content=b"data")
    assert r.status_code in (400, 404), r.text
    assert r.json()["error_code"] in (
        "INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST", "ENDPOINT_NOT_FOUND")
    assert api.get(f"{ART}", params={"path": f"0/{run['run_id']}/artifacts"}).json() == {
        "files": []}


def test_artifact_outside_its_run_or_experiment_is_refused(api: Any) -> None:
    run = _run(api)
    _error(api.put(f"{ART}/0/{run['run_id']}/artifacts", content=b"x"),
           "INVALID_PARAMETER_VALUE", 400)
    _error(api.put(f"{ART}/1234/{run['run_id']}/artifacts/a.txt", content=b"x"),
           "RESOURCE_DOES_NOT_EXIST", 404)
    _error(api.put(f"{ART}/0/{run['run_id']}/other/a.txt", content=b"x"),
           "RESOURCE_DOES_NOT_EXIST", 404)
    _error(api.put(f"{ART}/registry/churn/1/MLmodel", content=b"x"),
           "INVALID_PARAMETER_VALUE", 400)
    _error(api.get(f"{ART}/0/{run['run_id']}/artifacts/missing.txt"),
           "RESOURCE_DOES_NOT_EXIST", 404)


def test_artifact_over_the_size_limit_answers_resource_exhausted(small_api: Any) -> None:
    run = _run(small_api)
    _error(small_api.put(f"{ART}/0/{run['run_id']}/artifacts/big.bin", content=b"x" * 2048),
           "RESOURCE_EXHAUSTED", 413)
    ok = small_api.put(f"{ART}/0/{run['run_id']}/artifacts/dir/small.bin", content=b"y" * 10)
    assert ok.status_code == 200
    listing = small_api.get(ART, params={"path": f"0/{run['run_id']}/artifacts"}).json()
    assert listing == {"files": [{"path": "dir", "is_dir": True}]}
    assert small_api.get(f"{ART}/0/{run['run_id']}/artifacts/dir/small.bin").content == b"y" * 10


def test_registry_writes_are_refused_with_a_pointer_to_job_files(api: Any) -> None:
    for method, path in [("POST", "registered-models/create"), ("POST", "model-versions/create"),
                         ("POST", "registered-models/alias"),
                         ("POST", "model-versions/transition-stage")]:
        message = _error(api.request(method, f"{API}/{path}", json={"name": "churn"}),
                         "PERMISSION_DENIED", 403)
        assert "job files" in message


def test_history_holds_a_point_logged_twice_once_as_mlflow_does(api: Any) -> None:
    run = _run(api)
    point = {"run_id": run["run_id"], "key": "m", "value": 0.5, "timestamp": 1000, "step": 3}
    for _ in range(2):
        assert api.post(f"{API}/runs/log-metric", json=point).status_code == 200
    api.post(f"{API}/runs/log-metric", json={**point, "value": 0.6})
    got = api.get(f"{API}/metrics/get-history",
                  params={"run_id": run["run_id"], "metric_key": "m"}).json()["metrics"]
    assert [(m["step"], m["value"], m["timestamp"]) for m in got] == [(3, 0.5, 1000),
                                                                      (3, 0.6, 1000)]
