"""The Open Inference Protocol (V2) in-process: metadata, infer in JSON and binary, errors.

Hostile requests each get a V2-shaped error (``{"error": "..."}``) and a 4xx,
never a 500, and the server keeps answering.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from served_model import churn_records

INFER = "/v2/models/churn/infer"


@pytest.fixture(scope="module")
def v2(churn_api: TestClient) -> TestClient:
    return churn_api


@pytest.fixture(scope="module")
def metadata(v2: TestClient) -> dict[str, Any]:
    resp = v2.get("/v2/models/churn")
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def json_inputs(metadata: dict[str, Any], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"name": i["name"], "datatype": i["datatype"], "shape": [len(rows), 1],
             "data": [r[i["name"]] for r in rows]} for i in metadata["inputs"]]


def binary_body(metadata: dict[str, Any], rows: list[dict[str, Any]],
                outputs: list[dict[str, Any]] | None = None) -> tuple[bytes, int]:
    """A request as tritonclient sends it: JSON header, then each input's raw bytes."""
    inputs, chunks = [], []
    for i in metadata["inputs"]:
        values = [r[i["name"]] for r in rows]
        if i["datatype"] == "BYTES":
            raw = b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in values)
        else:
            raw = np.array([np.nan if v is None else v for v in values], dtype="<f4").tobytes()
        inputs.append({"name": i["name"], "datatype": i["datatype"], "shape": [len(rows), 1],
                       "parameters": {"binary_data_size": len(raw)}})
        chunks.append(raw)
    head: dict[str, Any] = {"inputs": inputs}
    head["outputs" if outputs is not None else "parameters"] = \
        outputs if outputs is not None else {"binary_data_output": True}
    header = json.dumps(head).encode()
    return header + b"".join(chunks), len(header)


def post_binary(client: TestClient, body: bytes, length: int | str,
                path: str = INFER) -> Any:
    return client.post(path, content=body, headers={
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(length)})


def outputs_of(resp: Any) -> dict[str, Any]:
    """Output name -> numpy array, from a JSON or a binary answer."""
    length = resp.headers.get("inference-header-content-length")
    head = json.loads(resp.content[:int(length)] if length else resp.content)
    tail, pos, out = resp.content[int(length):] if length else b"", 0, {}
    for o in head["outputs"]:
        size = (o.get("parameters") or {}).get("binary_data_size")
        if size is None:
            out[o["name"]] = np.array(o["data"]).reshape(o["shape"])
            continue
        raw, pos = tail[pos:pos + size], pos + size
        if o["datatype"] == "BYTES":
            items, p = [], 0
            while p < len(raw):
                (n,) = struct.unpack_from("<I", raw, p)
                items.append(raw[p + 4:p + 4 + n].decode())
                p += 4 + n
            out[o["name"]] = np.array(items, dtype=object)
        else:
            dtype = {"INT64": "<i8", "FP64": "<f8"}[o["datatype"]]
            out[o["name"]] = np.frombuffer(raw, dtype=dtype).reshape(o["shape"])
    return out


def test_server_metadata_and_health_answer(v2: TestClient) -> None:
    assert v2.get("/v2/health/live").json() == {"live": True}
    assert v2.get("/v2/health/ready").status_code == 200
    meta = v2.get("/v2").json()
    assert meta["name"] == "appliance" and "binary_tensor_data" in meta["extensions"]


def test_model_metadata_names_inputs_by_column(metadata: dict[str, Any]) -> None:
    names = {i["name"]: i["datatype"] for i in metadata["inputs"]}
    assert names["plan"] == "BYTES" and names["monthly_charges"] == "FP32"
    assert set(names) == set(churn_records(1)[0])
    assert [o["name"] for o in metadata["outputs"]] == ["predictions", "probabilities",
                                                        "request_id"]
    assert metadata["versions"] == ["1"]


def test_model_and_version_ready(v2: TestClient) -> None:
    assert v2.get("/v2/models/churn/ready").status_code == 200
    assert v2.get("/v2/models/churn/versions/1/ready").status_code == 200
    assert v2.get("/v2/models/churn/versions/1").json()["versions"] == ["1"]


def test_infer_json_tensors_equals_the_predict_route(v2: TestClient,
                                                     metadata: dict[str, Any]) -> None:
    rows = churn_records(20)
    resp = v2.post(INFER, json={"id": "req-7", "inputs": json_inputs(metadata, rows)})
    assert resp.status_code == 200, resp.text
    assert resp.json()["id"] == "req-7" and resp.json()["model_version"] == "1"
    out = outputs_of(resp)
    native = v2.post("/api/v1/models/churn/predict", json=rows).json()
    assert out["predictions"].tolist() == native["predictions"]
    expected = [[p["0"], p["1"]] for p in native["probabilities"]]
    assert np.allclose(out["probabilities"], expected, atol=1e-9)


def test_infer_binary_tensors_equals_the_predict_route(v2: TestClient,
                                                       metadata: dict[str, Any]) -> None:
    rows = churn_records(30, seed=5)
    body, length = binary_body(metadata, rows)
    resp = post_binary(v2, body, length, "/v2/models/churn/versions/1/infer")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/octet-stream"
    out = outputs_of(resp)
    native = v2.post("/api/v1/models/churn/predict", params={"version": 1}, json=rows).json()
    assert out["predictions"].tolist() == native["predictions"]
    assert np.allclose(out["probabilities"][:, 1], [p["1"] for p in native["probabilities"]],
                       atol=1e-6)
    assert len(out["request_id"]) == 30


def test_infer_one_2d_tensor_of_all_numbers_feeds_the_inputs_in_order(
        v2: TestClient, metadata: dict[str, Any]) -> None:
    """A 2-D tensor not named as a column is every input in order; churn has text
    columns, so a numeric matrix is refused by name, as a 400."""
    resp = v2.post(INFER, json={"inputs": [
        {"name": "features", "datatype": "FP32", "shape": [1, 7], "data": [1.0] * 7}]})
    assert resp.status_code == 400 and "plan" in resp.json()["error"]
    resp = v2.post(INFER, json={"inputs": [
        {"name": "features", "datatype": "FP32", "shape": [1, 3], "data": [1.0] * 3}]})
    assert resp.status_code == 400 and "[N, 7]" in resp.json()["error"]


def test_infer_with_request_ids_logs_them_for_labels(v2: TestClient,
                                                     metadata: dict[str, Any]) -> None:
    rows = churn_records(3, seed=8)
    inputs = [*json_inputs(metadata, rows),
              {"name": "request_id", "datatype": "BYTES", "shape": [3],
               "data": ["v2-a", "v2-b", "v2-c"]}]
    resp = v2.post(INFER, json={"inputs": inputs,
                                "outputs": [{"name": "request_id"},
                                            {"name": "predictions",
                                             "parameters": {"binary_data": True}}]})
    assert resp.status_code == 200, resp.text
    out = outputs_of(resp)
    assert list(out) == ["request_id", "predictions"]
    assert out["request_id"].tolist() == ["v2-a", "v2-b", "v2-c"]
    fed = v2.post("/api/v1/models/churn/feedback",
                  json=[{"request_id": "v2-a", "label": 1}]).json()
    assert fed["matched"] == 1


def _bad(resp: Any, status: int, words: str) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert isinstance(body["error"], str) and words in body["error"], body


@pytest.mark.parametrize(("change", "status", "words"), [
    (lambda t: t[0].update(datatype="BYTES"), 400, "BYTES data cannot hold"),
    (lambda t: t[0].update(datatype="FP99"), 400, "datatype 'FP99'"),
    (lambda t: t[4].update(datatype="FP32", data=[1.0]), 400, "'plan' must be text"),
    (lambda t: t[0].update(shape=[2, 1]), 400, "needs 2"),
    (lambda t: t[0].update(shape=[-1]), 400, "whole numbers >= 0"),
    (lambda t: t[0].update(shape=[100_000, 100_000, 100_000]), 413, "elements"),
    (lambda t: t[0].update(data="x"), 400, "must be a list"),
    (lambda t: t.pop(1), 400, "missing field 'tenure_months'"),
    (lambda t: t.append({**t[0], "name": "surprise"}), 400, "unknown field 'surprise'"),
    (lambda t: t.append(dict(t[0])), 400, "appears twice"),
    (lambda t: t[0].update(data=[True]), 400, "cannot hold bool"),
    (lambda t: t[0].update(datatype="INT64", data=[2**70]), 400, "out of the range"),
    (lambda t: t[0].pop("data"), 400, "neither"),
], ids=["wrong-datatype", "unknown-datatype", "number-for-text", "shape-mismatch",
        "negative-dim", "huge-shape", "data-not-list", "missing", "unknown-input", "duplicate",
        "bool-for-number", "int-overflow", "no-data"])
def test_infer_a_bad_json_tensor_is_a_v2_error(v2: TestClient, metadata: dict[str, Any],
                                                change: Any, status: int, words: str) -> None:
    tensors = json_inputs(metadata, churn_records(1))
    change(tensors)
    _bad(v2.post(INFER, json={"inputs": tensors}), status, words)


def test_infer_binary_size_mismatch_and_bad_header_length_are_400(
        v2: TestClient, metadata: dict[str, Any]) -> None:
    body, length = binary_body(metadata, churn_records(2))
    _bad(post_binary(v2, body + b"\0\0\0\0", length), 400, "add up to")
    _bad(post_binary(v2, body[:-3], length), 400, "runs past the end")
    _bad(post_binary(v2, body, len(body) + 10), 400, "Inference-Header-Content-Length")
    _bad(post_binary(v2, body, "-5"), 400, "Inference-Header-Content-Length")
    _bad(post_binary(v2, body, length - 1), 400, "not JSON")
    head = json.loads(body[:length])
    head["inputs"][0]["parameters"]["binary_data_size"] = 4  # 2 FP32 rows need 8
    header = json.dumps(head).encode()
    rest = body[length:]
    _bad(post_binary(v2, header + rest[:4] + rest[8:], len(header)), 400, "needs 8")
    head["inputs"][0]["parameters"]["binary_data_size"] = 2**40
    header = json.dumps(head).encode()
    _bad(post_binary(v2, header + rest, len(header)), 400, "runs past the end")


def test_infer_bad_bodies_and_names_are_v2_errors(v2: TestClient, metadata: dict[str, Any]) -> None:
    tensors = json_inputs(metadata, churn_records(1))
    _bad(v2.post(INFER, content=b"{nope", headers={"Content-Type": "application/json"}),
         400, "not JSON")
    _bad(v2.post(INFER, json=[1, 2]), 400, "JSON object")
    _bad(v2.post(INFER, json={"inputs": []}), 400, "non-empty")
    _bad(v2.post("/v2/models/ghost/infer", json={"inputs": tensors}), 404, "ghost")
    _bad(v2.post("/v2/models/churn/versions/99/infer", json={"inputs": tensors}), 404, "99")
    _bad(v2.post("/v2/models/churn/versions/one/infer", json={"inputs": tensors}), 400,
         "not a version number")
    _bad(v2.get("/v2/models/ghost"), 404, "ghost")
    _bad(v2.get("/v2/models/churn/versions/99/ready"), 404, "99")
    _bad(v2.post(INFER, json={"inputs": tensors, "outputs": [{"name": "logits"}]}), 400,
         "unknown output 'logits'")
    big = b"{" + b" " * (65 * 1024 * 1024) + b"}"
    _bad(v2.post(INFER, content=big, headers={"Content-Type": "application/json"}), 413,
         "larger than")
    assert v2.post(INFER, json={"inputs": tensors}).status_code == 200


def test_v2_needs_a_token_like_predict_but_health_does_not(v2: TestClient,
                                                           metadata: dict[str, Any]) -> None:
    anonymous = TestClient(v2.app)
    tensors = json_inputs(metadata, churn_records(1))
    _bad(anonymous.post(INFER, json={"inputs": tensors}), 401, "")
    _bad(anonymous.get("/v2/models/churn"), 401, "")
    _bad(anonymous.get("/v2"), 401, "")
    assert anonymous.get("/v2/health/live").status_code == 200
    assert anonymous.get("/v2/health/ready").status_code == 200


def test_v2_infer_is_logged_and_counted_like_predict(v2: TestClient,
                                                     metadata: dict[str, Any]) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    def served() -> float:
        families = {f.name: f for f in text_string_to_metric_families(v2.get("/metrics").text)}
        return sum(s.value for s in families["appliance_predict_requests"].samples
                   if s.labels.get("model") == "churn" and s.name.endswith("_total"))

    before = served()
    perf = v2.get("/api/v1/models/churn/performance").json()["versions"]
    logged = sum(v["predictions"] for v in perf)
    rows = churn_records(4, seed=11)
    assert v2.post(INFER, json={"inputs": json_inputs(metadata, rows)}).status_code == 200
    assert served() == before + 1
    perf = v2.get("/api/v1/models/churn/performance").json()["versions"]
    assert sum(v["predictions"] for v in perf) == logged + 4


BIG = 80  # rows: more than SMALL_BATCH, so binary tensors are scored as numpy columns


def _binary_with(metadata: dict[str, Any], change: Any) -> tuple[bytes, int]:
    body, length = binary_body(metadata, churn_records(BIG, seed=31))
    head, tail = json.loads(body[:length]), body[length:]
    chunks, pos = [], 0
    for entry in head["inputs"]:
        size = entry["parameters"]["binary_data_size"]
        chunks.append(tail[pos:pos + size])
        pos += size
    change(head["inputs"], chunks)
    header = json.dumps(head).encode()
    return header + b"".join(chunks), len(header)


def _retype(inputs: list[dict[str, Any]], chunks: list[bytes], i: int, datatype: str,
            raw: bytes) -> None:
    inputs[i]["datatype"] = datatype
    inputs[i]["parameters"]["binary_data_size"] = len(raw)
    chunks[i] = raw


@pytest.mark.parametrize(("change", "words"), [
    (lambda ins, ch: _retype(ins, ch, 4, "FP32", np.zeros(BIG, "<f4").tobytes()), "is text"),
    (lambda ins, ch: _retype(ins, ch, 0, "BYTES", b"\x01\0\0\0a" * BIG), "is a number"),
    (lambda ins, ch: _retype(ins, ch, 0, "BOOL", b"\x01" * BIG), "is a number"),
    (lambda ins, ch: (ins.pop(1), ch.pop(1)), "missing input 'tenure_months'"),
    (lambda ins, ch: (ins.append({**ins[0], "name": "surprise"}), ch.append(ch[0])),
     "unknown input 'surprise'"),
    (lambda ins, ch: (_retype(ins, ch, 0, "FP32", np.zeros(2 * BIG, "<f4").tobytes()),
                      ins[0].update(shape=[BIG, 2])), f"has shape [{BIG}, 2]"),
    (lambda ins, ch: (_retype(ins, ch, 0, "FP32", np.zeros(1, "<f4").tobytes()),
                      ins[0].update(shape=[1, 1])), "same number of rows"),
    (lambda ins, ch: _retype(ins, ch, 0, "FP32",
                             np.array([1] * (BIG - 1) + [np.inf], "<f4").tobytes()), "infinity"),
    (lambda ins, ch: _retype(ins, ch, 4, "BYTES", b"\x01\0\0\0a" * (BIG - 1) + b"\x05\0\0\0a"),
     "runs past its data"),
    (lambda ins, ch: _retype(ins, ch, 4, "BYTES", b"\x01\0\0\0\xff\x01\0\0\0b"), "UTF-8"),
], ids=["number-for-text", "text-for-number", "bool-for-number", "missing", "unknown",
        "row-shape", "row-count", "infinity", "bytes-overrun", "bytes-not-utf8"])
def test_infer_a_bad_binary_tensor_is_a_v2_error(v2: TestClient, metadata: dict[str, Any],
                                                  change: Any, words: str) -> None:
    body, length = _binary_with(metadata, change)
    _bad(post_binary(v2, body, length), 400, words)


def test_infer_nan_is_missing_in_json_and_binary_alike(v2: TestClient,
                                                       metadata: dict[str, Any]) -> None:
    rows = churn_records(2, seed=41)
    rows[0]["total_charges"] = None
    native = v2.post("/api/v1/models/churn/predict", json=rows).json()["probabilities"]
    body, length = binary_body(metadata, rows)  # None is sent as NaN
    binary = outputs_of(post_binary(v2, body, length))["probabilities"]
    tensors = json_inputs(metadata, rows)
    tensors[3]["data"] = [float("nan") if v is None else v for v in tensors[3]["data"]]
    resp = v2.post(INFER, content=json.dumps({"inputs": tensors}).encode(),
                   headers={"Content-Type": "application/json"})
    assert resp.status_code == 200, resp.text
    assert np.allclose(outputs_of(resp)["probabilities"][:, 1], [p["1"] for p in native])
    assert np.allclose(binary[:, 1], [p["1"] for p in native], atol=1e-6)


def test_infer_binary_over_small_batch_rows_equals_the_predict_route(
        v2: TestClient, metadata: dict[str, Any]) -> None:
    """More than SMALL_BATCH rows take the numpy column path; same answers."""
    rows = churn_records(BIG + 20, seed=51)
    rows[3]["total_charges"] = None
    body, length = binary_body(metadata, rows)
    out = outputs_of(post_binary(v2, body, length))
    native = v2.post("/api/v1/models/churn/predict", json=rows).json()
    assert out["predictions"].tolist() == native["predictions"]
    assert np.allclose(out["probabilities"][:, 1], [p["1"] for p in native["probabilities"]],
                       atol=1e-6)
    assert len(set(out["request_id"].tolist())) == BIG + 20


def test_infer_a_bad_small_binary_tensor_names_the_field(v2: TestClient,
                                                          metadata: dict[str, Any]) -> None:
    body, length = binary_body(metadata, churn_records(2, seed=61))
    head, tail = json.loads(body[:length]), body[length:]
    sizes = [i["parameters"]["binary_data_size"] for i in head["inputs"]]
    start = sum(sizes[:4])
    head["inputs"][4].update(datatype="FP32", parameters={"binary_data_size": 8})
    header = json.dumps(head).encode()
    tail = tail[:start] + np.zeros(2, "<f4").tobytes() + tail[start + sizes[4]:]
    _bad(post_binary(v2, header + tail, len(header)), 400, "'plan' must be text")


def test_infer_binary_rows_are_logged_as_records_like_predict(
        v2: TestClient, metadata: dict[str, Any]) -> None:
    """Rows scored as columns become records in the log's writer thread: the logged
    inputs read as the predict route's would, NaN as null."""
    rows = churn_records(BIG + 5, seed=71)
    rows[2]["total_charges"] = None
    ids = [f"logged-{i}" for i in range(len(rows))]
    body, length = binary_body(metadata, rows)
    head, tail = json.loads(body[:length]), body[length:]
    raw = b"".join(struct.pack("<I", len(r)) + r.encode() for r in ids)
    head["inputs"].append({"name": "request_id", "datatype": "BYTES", "shape": [len(ids)],
                           "parameters": {"binary_data_size": len(raw)}})
    header = json.dumps(head).encode()
    assert post_binary(v2, header + tail + raw, len(header)).status_code == 200
    app = v2.app.state.appliance
    app.serving.log.flush()
    logged = dict(app.store.execute(
        "SELECT request_id, inputs FROM predictions WHERE request_id LIKE 'logged-%'"))
    assert len(logged) == len(rows)
    first = logged["logged-2"]
    first = json.loads(first) if isinstance(first, str) else first
    assert first["total_charges"] is None and first["plan"] == rows[2]["plan"]
    assert first["age"] == pytest.approx(rows[2]["age"])
