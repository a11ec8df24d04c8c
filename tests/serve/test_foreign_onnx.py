"""ONNX models built elsewhere: scored through their tensor inputs, or refused at upload."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from appliance_test_support import logged_in, make_settings
from fastapi.testclient import TestClient

OCTET = {"Content-Type": "application/octet-stream"}
IRIS_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def iris() -> tuple[Any, bytes]:
    """Plain scikit-learn and skl2onnx, as a user would export: one float input [None, 4],
    a label and a ZipMap of probabilities."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    onx = convert_sklearn(model, initial_types=[("input", FloatTensorType([None, 4]))],
                          target_opset=17)
    return model, onx.SerializeToString()


def graph(nodes: list[Any], inputs: list[Any], outputs: list[Any], **kw: Any) -> bytes:
    from onnx import helper

    model = helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, **kw),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def doubled(shape: list[Any]) -> bytes:
    """y = 2x on a float input of ``shape``."""
    from onnx import TensorProto, helper

    return graph([helper.make_node("Mul", ["x", "two"], ["y"])],
                 [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
                 initializer=[helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])])


@dataclass(frozen=True)
class Served:
    client: TestClient
    model: Any      # the fitted scikit-learn model
    onnx: bytes     # its skl2onnx export


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from appliance.api.app import create_app
    from appliance.runtime import build

    model, data = iris()
    app = build(make_settings(tmp_path_factory.mktemp("foreign") / "home"))
    try:
        with TestClient(create_app(app)) as client:
            logged_in(client)
            plain = client.post("/api/v1/models/iris/versions", content=data, headers=OCTET)
            named = client.post("/api/v1/models/iris/versions", content=data, headers=OCTET,
                                params={"features": ",".join(FEATURES)})
            assert (plain.status_code, named.status_code) == (201, 201), plain.text + named.text
            yield Served(client, model, data)
    finally:
        app.close()


def predict(client: TestClient, body: Any, version: int = 1, **kw: Any) -> Any:
    return client.post("/api/v1/models/iris/predict", params={"version": version}, json=body, **kw)


def test_upload_signature_shows_type_names_not_onnx_enum_numbers(
        served: Served) -> None:
    client = served.client
    shown = client.get("/api/v1/models/iris").json()["versions"][-1]["signature"]
    version = client.get("/api/v1/models/iris/versions/1").json()["signature"]
    card = client.get("/api/v1/models/iris/versions/1/card").json()["signature"]
    assert shown == version == card
    assert version["inputs"] == [{"name": "input", "type": "float", "shape": [None, 4],
                                  "column": "input"}]
    assert [(o["name"], o["type"]) for o in version["outputs"]] == [
        ("output_label", "int64"), ("output_probability", "seq(map(int64,tensor(float)))")]
    named = client.get("/api/v1/models/iris/versions/2").json()["signature"]
    assert named["inputs"][0]["features"] == FEATURES


@pytest.mark.parametrize("shape", ["records", "bare-rows"])
def test_predict_a_vector_input_from_nested_lists_matches_sklearn(
        served: Served, shape: str) -> None:
    client, model = served.client, served.model
    body = [{"input": r} for r in IRIS_ROWS] if shape == "records" else IRIS_ROWS
    resp = predict(client, body)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["predictions"] == model.predict(np.array(IRIS_ROWS)).tolist()
    proba = [[p[str(c)] for c in range(3)] for p in out["probabilities"]]
    np.testing.assert_allclose(proba, model.predict_proba(np.array(IRIS_ROWS)), atol=1e-5)


def test_predict_records_keyed_by_the_uploads_feature_names(
        served: Served) -> None:
    client, model = served.client, served.model
    records = [dict(zip(FEATURES, r, strict=True)) for r in IRIS_ROWS]
    by_name = predict(client, records, version=2)
    assert by_name.status_code == 200, by_name.text
    assert by_name.json()["predictions"] == model.predict(np.array(IRIS_ROWS)).tolist()
    text = ",".join(FEATURES) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in IRIS_ROWS)
    as_csv = client.post("/api/v1/models/iris/predict", params={"version": 2},
                         content=text.encode(), headers={"Content-Type": "text/csv"})
    assert as_csv.status_code == 200, as_csv.text
    assert as_csv.json()["predictions"] == by_name.json()["predictions"]


@pytest.mark.parametrize(("body", "words"), [
    ([{"input": 5.1}], "must be a list of 4 values, got float"),
    ([{"input": [5.1, 3.5, 1.4]}], "must be a list of 4 values, got a list of 3"),
    ([{"input": [5.1, 3.5, 1.4, "x"]}], "must be a number, got str"),
    ([{"input": [5.1, 3.5, 1.4, float("inf")]}], "is not finite"),
    ([{"sepal_length": 5.1}], "unknown field 'sepal_length'"),
    ([[5.1, 3.5, 1.4, 0.2], "x"], "row 1 (counting from 0): is not an object"),
], ids=["scalar", "short", "text", "inf", "names-without-upload-names", "bad-row"])
def test_predict_a_wrong_tensor_value_is_422_never_500(
        served: Served, body: Any, words: str) -> None:
    client = served.client
    resp = client.post("/api/v1/models/iris/predict", params={"version": 1},
                       content=json.dumps(body),  # inf goes as Infinity, which json reads
                       headers={"Content-Type": "application/json"})
    assert resp.status_code == 422, resp.text
    assert words in resp.json()["error"]["message"]


def test_predict_a_csv_body_for_an_unnamed_vector_input_says_how_to_send_it(
        served: Served) -> None:
    client = served.client
    resp = client.post("/api/v1/models/iris/predict", params={"version": 1},
                       content=b"a,b,c,d\n1,2,3,4\n", headers={"Content-Type": "text/csv"})
    assert resp.status_code == 422
    assert "nested lists" in resp.json()["error"]["message"]


def test_predict_a_rank_1_input_and_output(served: Served) -> None:
    api = served.client
    assert api.post("/api/v1/models/double/versions", content=doubled([None]),
                    headers=OCTET).status_code == 201
    resp = api.post("/api/v1/models/double/predict", params={"version": 1},
                    json=[{"x": 1.5}, {"x": -2.0}])
    assert resp.status_code == 200, resp.text
    assert resp.json()["predictions"] == [3.0, -4.0]


def test_predict_a_vector_output_answers_a_list_a_row(served: Served) -> None:
    api = served.client
    assert api.post("/api/v1/models/pair/versions", content=doubled([None, 2]),
                    headers=OCTET).status_code == 201
    resp = api.post("/api/v1/models/pair/predict", params={"version": 1},
                    json=[[1.0, 2.0], [3.0, 4.0]])
    assert resp.status_code == 200, resp.text
    assert resp.json()["predictions"] == [[2.0, 4.0], [6.0, 8.0]]
    metrics = api.get("/metrics").text
    assert 'model="pair"' in metrics and "[2.0" not in metrics   # a vector is not a class


def test_predict_an_output_without_one_entry_a_row_is_422_naming_it(served: Served) -> None:
    from onnx import TensorProto, helper

    api = served.client
    summed = graph([helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0)],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1])],
                   [helper.make_tensor_value_info("total", TensorProto.FLOAT, [])])
    assert api.post("/api/v1/models/summed/versions", content=summed,
                    headers=OCTET).status_code == 201
    resp = api.post("/api/v1/models/summed/predict", params={"version": 1},
                    json=[{"x": 1.0}, {"x": 2.0}])
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["detail"] == {"output": "total"}


def refusal(api: TestClient, data: bytes, **params: str) -> dict[str, Any]:
    resp = api.post("/api/v1/models/foreign/versions", content=data, headers=OCTET, params=params)
    assert resp.status_code == 400, resp.text
    assert api.get("/api/v1/models/foreign").status_code == 404  # nothing was registered
    error: dict[str, Any] = resp.json()["error"]
    return error


@pytest.mark.parametrize(("shape", "words"), [
    ([1, 4], "fixed batch size of 1"),
    ([None, None], "every dimension after the batch must have a fixed size"),
    ([], "declares no batch dimension"),
], ids=["fixed-batch", "unknown-width", "scalar"])
def test_upload_a_model_serving_cannot_feed_is_refused_with_the_reason(
        served: Served, shape: list[Any], words: str) -> None:
    error = refusal(served.client, doubled(shape))
    assert error["detail"]["reason"] == "not_servable" and words in error["message"]


def test_upload_a_sequence_input_is_refused(served: Served) -> None:
    from onnx import TensorProto, helper

    seq = helper.make_tensor_sequence_value_info("xs", TensorProto.FLOAT, None)
    data = graph([helper.make_node("SequenceLength", ["xs"], ["n"])], [seq],
                 [helper.make_tensor_value_info("n", TensorProto.INT64, [])])
    assert "only tensor inputs" in refusal(served.client, data)["message"]


@pytest.mark.parametrize(("features", "reason"), [
    ("a,b,c", "count"), ("a,b,c,c", None), ("a,b,c,request_id", None), ("a,,c,d", None)])
def test_upload_bad_feature_names_are_refused(served: Served, features: str,
                                              reason: str | None) -> None:
    error = refusal(served.client, served.onnx, features=features)
    assert error["detail"]["field"] == "features"
    assert error["detail"].get("reason") == reason


def test_a_stored_signature_with_enum_numbers_reads_as_names(appliance_app: Any) -> None:
    from appliance_test_support import tiny_onnx

    from appliance.domain.principal import SYSTEM

    old = {"inputs": [{"name": "x", "type": 1, "shape": [None, 1]}],
           "outputs": [{"name": "y", "type": 11, "shape": [None, 1]},
                       {"name": "p", "type": 0, "shape": []}]}
    appliance_app.registry.register(model="old", onnx_bytes=tiny_onnx(), flavor="onnx",
                                    by=SYSTEM, signature=old)
    shown = appliance_app.registry.version("old", 1).signature
    assert shown is not None and [e["type"] for e in shown["inputs"] + shown["outputs"]] == [
        "float", "double", "not a tensor"]
