"""MLflow's scoring protocol (``/invocations``) in-process: the four JSON bodies, CSV,
errors in MLflow's shape; answers equal the predict route's."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from served_model import churn_records

PATH = "/api/v1/models/churn/invocations"


@pytest.fixture(scope="module")
def scoring(churn_api: TestClient) -> TestClient:
    return churn_api


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    return churn_records(6, seed=21)


@pytest.fixture(scope="module")
def expected(scoring: TestClient, rows: list[dict[str, Any]]) -> list[Any]:
    return list(scoring.post("/api/v1/models/churn/predict", json=rows).json()["predictions"])


def bodies(rows: list[dict[str, Any]]) -> dict[str, Any]:
    columns = list(rows[0])
    return {
        "dataframe_split": {"dataframe_split": {"columns": columns, "index": list(range(len(rows))),
                                                "data": [[r[c] for c in columns] for r in rows]}},
        "dataframe_records": {"dataframe_records": rows},
        "instances": {"instances": rows},
        "inputs-columns": {"inputs": {c: [r[c] for r in rows] for c in columns}},
        "with-params": {"dataframe_records": rows, "params": {}},
    }


@pytest.mark.parametrize("kind", ["dataframe_split", "dataframe_records", "instances",
                                  "inputs-columns", "with-params"])
def test_invocations_body_kinds_answer_like_predict(scoring: TestClient, rows: list[dict[str, Any]],
                                                    expected: list[Any], kind: str) -> None:
    resp = scoring.post(PATH, json=bodies(rows)[kind])
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"predictions": expected}


def test_invocations_bare_path_scores_the_only_model(scoring: TestClient,
                                                     rows: list[dict[str, Any]],
                                                     expected: list[Any]) -> None:
    resp = scoring.post("/invocations", json={"dataframe_records": rows})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"predictions": expected}


def test_invocations_takes_csv_like_mlflow(scoring: TestClient, expected: list[Any]) -> None:
    from appliance.demo import make_customers

    csv = make_customers(6, seed=21).drop("churned", "customer_id").write_csv().encode()
    resp = scoring.post(PATH, content=csv, headers={"Content-Type": "text/csv"})
    assert resp.status_code == 200 and resp.json() == {"predictions": expected}


def _mlflow_error(resp: Any, status: int, code: str, words: str) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error_code"] == code and words in body["message"], body


@pytest.mark.parametrize(("body", "words"), [
    ([1, 2], "JSON object"),
    ({}, "exactly one of"),
    ({"dataframe_records": [], "instances": []}, "exactly one of"),
    ({"dataframe_records": [{"age": 1}], "surprise": 1}, "exactly one of"),
    ({"dataframe_records": [1, 2]}, "list of objects"),
    ({"dataframe_split": {"data": [[1]]}}, "columns"),
    ({"dataframe_split": {"columns": ["a", "b"], "data": [[1]]}}, "row 0"),
    ({"inputs": {"age": [1, 2], "plan": ["basic"]}}, "same length"),
    ({"instances": "nope"}, "list of records"),
    ({"dataframe_records": [{"age": "old"}]}, "row 0"),
    ({"dataframe_records": [], "params": 3}, "params"),
], ids=["not-object", "no-key", "two-keys", "extra-key", "records-not-objects", "split-no-columns",
        "split-ragged", "columns-ragged", "instances-string", "bad-field", "params-not-object"])
def test_invocations_bad_bodies_are_mlflow_shaped_400(scoring: TestClient, body: Any,
                                                      words: str) -> None:
    _mlflow_error(scoring.post(PATH, json=body), 400, "BAD_REQUEST", words)


def test_invocations_other_errors_are_mlflow_shaped(scoring: TestClient,
                                                    rows: list[dict[str, Any]]) -> None:
    _mlflow_error(scoring.post("/api/v1/models/ghost/invocations",
                               json={"dataframe_records": rows}), 404,
                  "RESOURCE_DOES_NOT_EXIST", "ghost")
    _mlflow_error(scoring.post(PATH, content=b"{nope", headers={"Content-Type": "application/json"}),
                  400, "BAD_REQUEST", "not JSON")
    _mlflow_error(scoring.post(PATH, content=b"x", headers={"Content-Type": "text/plain"}),
                  415, "BAD_REQUEST", "application/json")
    _mlflow_error(TestClient(scoring.app).post(PATH, json={"dataframe_records": rows}),
                  401, "UNAUTHENTICATED", "")
    big = b"[" + b" " * (6 * 1024 * 1024) + b"]"
    _mlflow_error(scoring.post(PATH, content=big, headers={"Content-Type": "application/json"}),
                  413, "BAD_REQUEST", "larger than")


def test_invocations_bare_path_refuses_when_several_models_exist(
        scoring: TestClient, rows: list[dict[str, Any]]) -> None:
    from appliance_test_support import tiny_onnx

    resp = scoring.post("/api/v1/models/other/versions", content=tiny_onnx(),
                        headers={"Content-Type": "application/octet-stream"})
    assert resp.status_code in (200, 201), resp.text
    _mlflow_error(scoring.post("/invocations", json={"dataframe_records": rows}), 400,
                  "BAD_REQUEST", "/api/v1/models/{name}/invocations")
