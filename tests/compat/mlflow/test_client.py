"""The real MLflow client (mlflow 3.x) runs a notebook script, unchanged, against a live
``appliance serve``; the same script against a real ``mlflow server`` answers the same."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from appliance_test_support import free_port, tiny_onnx

from tests.compat.mlflow.support import mlflow_server, run_notebook

EXPECTED_RUN = {
    "status": "FINISHED", "run_name": "nb-run", "lifecycle_stage": "active",
    "in_experiment": True, "ended": True, "artifact_uri": True,
    "params": {"alpha": "0.5", "depth": "3", "lr": "0.1"},
    "metrics": {"auc": 0.9999, "loss": 0.5},
}


@pytest.fixture
def appliance(server_factory: Any) -> tuple[str, str]:
    """A live appliance whose registry has ``churn`` v1 (y = x + 2) as champion."""
    server = server_factory()
    token = server.client().token
    headers = {"Authorization": f"Bearer {token}"}
    up = httpx.post(f"{server.url}/api/v1/models/churn/versions", content=tiny_onnx(2.0),
                    headers=headers, timeout=30)
    assert up.status_code == 201, up.text
    moved = httpx.put(f"{server.url}/api/v1/models/churn/aliases/champion",
                      json={"version": 1, "reason": "first"}, headers=headers, timeout=30)
    assert moved.status_code == 200, moved.text
    return server.url, str(token)


def _predict(url: str, token: str, xs: list[float]) -> list[float]:
    r = httpx.post(f"{url}/api/v1/models/churn/predict", json=[{"x": x} for x in xs],
                   headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 200, r.text
    return [float(p) for p in r.json()["predictions"]]


def test_notebook_logs_into_the_appliance_unchanged(appliance: tuple[str, str],
                                                    tmp_path: Path) -> None:
    url, token = appliance
    got = run_notebook(url, token=token, cwd=tmp_path)

    assert {k: v for k, v in got["run"].items() if k != "tags"} == EXPECTED_RUN
    assert got["run"]["tags"]["team"] == "ml" and "scratch" not in got["run"]["tags"]
    assert got["param_changed"] == "INVALID_PARAMETER_VALUE"
    assert got["history"] == {"auc_points": 10_000, "auc_steps": True, "auc_last": 0.9999,
                              "loss": [[0, 1.0], [1, 0.5]]}
    assert got["artifacts"] == {"root": [["notes.txt", False], ["sub", True]],
                                "sub": [["sub/dir/notes.txt", False]],
                                "text": "hello from the notebook"}
    assert got["search"] == {"all": ["broken", "nb-run"], "filtered": ["nb-run"],
                             "failed": ["broken"], "tagged": ["nb-run"]}
    assert got["deleted"] == {"active": ["broken"], "all": ["broken", "nb-run"],
                              "stage": "deleted"}
    assert got["restored"] == "active"
    assert got["experiment"] == {"name": "notebook", "stage": "active", "default": "Default",
                                 "missing": None}
    assert got["errors"] == {"unknown_run": "RESOURCE_DOES_NOT_EXIST",
                             "unknown_experiment": "RESOURCE_DOES_NOT_EXIST",
                             "unknown_model": "RESOURCE_DOES_NOT_EXIST",
                             "duplicate_experiment": "RESOURCE_ALREADY_EXISTS"}
    # the champion, read by alias and loaded with mlflow.onnx / pyfunc, predicts as we do
    assert got["registry"]["version"] == "1" and got["registry"]["aliases"] == ["champion"]
    assert got["registry"]["onnx_predict"] == _predict(url, token, [1.5, -2.0])
    assert got["registry"]["pyfunc_predict"] == got["registry"]["onnx_predict"]

    # ... and the runs are ours: in the Runs API, under their experiment, with the points
    headers = {"Authorization": f"Bearer {token}"}
    page = httpx.get(f"{url}/api/v1/runs", params={"experiment": "notebook"},
                     headers=headers).json()
    assert sorted(r["name"] for r in page["items"]) == ["broken", "nb-run"]
    run = next(r for r in page["items"] if r["name"] == "nb-run")
    assert run["status"] == "succeeded" and run["metrics"] == {"auc": 0.9999, "loss": 0.5}
    detail = httpx.get(f"{url}/api/v1/runs/{run['id']}", headers=headers).json()
    assert sorted(a["name"] for a in detail["artifacts"]) == ["notes.txt", "sub/dir/notes.txt"]
    exps = httpx.get(f"{url}/api/v1/experiments", headers=headers).json()
    assert {e["name"]: e["runs"] for e in exps}["notebook"] == 2


@pytest.mark.slow
def test_autolog_logs_sklearn_and_xgboost_params_and_metrics(appliance: tuple[str, str],
                                                             tmp_path: Path) -> None:
    url, token = appliance
    got = run_notebook(url, "--autolog", token=token, cwd=tmp_path)["autolog"]
    assert {"C", "max_iter", "solver"} <= set(got["sklearn_params"])
    assert "training_score" in got["sklearn_metrics"] and got["sklearn_score"] > 0.9
    assert {"max_depth", "learning_rate"} <= set(got["xgboost_params"])
    assert got["xgboost_metrics"] == ["validation_0-logloss"]
    assert got["xgboost_history"] == 5  # n_estimators=5: one point a round


@pytest.mark.slow
def test_notebook_answers_as_mlflow_server_does(appliance: tuple[str, str],
                                                tmp_path: Path) -> None:
    url, token = appliance
    (tmp_path / "a").mkdir()
    (tmp_path / "m").mkdir()
    ours = run_notebook(url, "--autolog", token=token, cwd=tmp_path / "a")
    with mlflow_server(tmp_path / "mlflow", free_port()) as mlflow_url:
        theirs = run_notebook(mlflow_url, "--register", "--autolog", token=None,
                              cwd=tmp_path / "m")
    assert ours == theirs
