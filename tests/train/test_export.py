"""check_onnx_bytes: only a single-file ONNX model gets through; nothing is ever unpickled."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from appliance.errors import InvalidInput
from appliance.train.child.export import check_onnx_bytes

from .conftest import job, run


def tiny_model(size: int = 64) -> onnx.ModelProto:
    weights = numpy_helper.from_array(np.arange(size, dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [size])], [weights])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def refused(data: bytes) -> str:
    with pytest.raises(InvalidInput) as info:
        check_onnx_bytes(data)
    return info.value.message


def test_check_onnx_bytes_pickle_refused() -> None:
    data = pickle.dumps({"weights": [1, 2, 3]})   # made here; never loaded
    assert "pickle" in refused(data)


def test_check_onnx_bytes_old_protocol_pickle_refused() -> None:
    assert "not an ONNX model" in refused(pickle.dumps({"a": 1}, protocol=0))


def test_check_onnx_bytes_random_bytes_refused() -> None:
    data = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    assert "not an ONNX model" in refused(data)


@pytest.mark.parametrize("data", [b"", b"hello, I am a model", b"<html></html>\n", b"PK\x03\x04zip"])
def test_check_onnx_bytes_text_and_empty_refused(data: bytes) -> None:
    refused(data)


def test_check_onnx_bytes_external_data_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save_model(tiny_model(), path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    assert (tmp_path / "weights.bin").is_file()
    assert "external" in refused(path.read_bytes())


def test_check_onnx_bytes_checker_failure_refused() -> None:
    model = tiny_model()
    model.graph.node[0].input[1] = "nowhere"   # an input nothing produces
    assert "checker" in refused(model.SerializeToString())


def test_check_onnx_bytes_foreign_domain_refused() -> None:
    model = tiny_model()
    model.opset_import.append(helper.make_opsetid("com.example.custom", 1))
    assert "domains" in refused(model.SerializeToString())


def test_check_onnx_bytes_small_model_accepted() -> None:
    assert check_onnx_bytes(tiny_model().SerializeToString()).graph.name == "tiny"


def test_check_onnx_bytes_exported_model_accepted(data_dir: Path, tmp_path: Path) -> None:
    result = run(data_dir, tmp_path, job("XGBClassifier", "label", params={"n_estimators": 3},
                                         features={"exclude": ["amount"]}), "mixed")
    model = check_onnx_bytes((tmp_path / "model.onnx").read_bytes())
    props = {p.key: p.value for p in model.metadata_props}
    assert props["appliance.classes"] == '["no", "yes"]'
    assert [i.name for i in model.graph.input] == [i["name"] for i in result["signature"]["inputs"]]


def test_canonical_sorts_opset_imports_and_metadata() -> None:
    from appliance.train.child.export import canonical

    model = tiny_model()
    del model.opset_import[:]
    model.opset_import.extend([helper.make_opsetid("ai.onnx.ml", 3), helper.make_opsetid("", 17)])
    onnx.helper.set_model_props(model, {"b": "2", "a": "1"})
    canonical(model)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17), ("ai.onnx.ml", 3)]
    assert [p.key for p in model.metadata_props] == ["a", "b"]


def train_in_a_child(data_dir: Path, out: Path, hash_seed: str) -> bytes:
    """One training child (``python -m appliance.train.child.worker``), as the server starts it."""
    import json
    import os
    import subprocess
    import sys

    spec = job("LogisticRegression", "label", features={"exclude": ["customer id", "amount"]})
    request = {"job": spec, "parquet_path": str(data_dir / "mixed.parquet"), "out_dir": str(out)}
    done = subprocess.run([sys.executable, "-m", "appliance.train.child.worker"],
                          input=json.dumps(request).encode(), capture_output=True, timeout=120,
                          env={**os.environ, "PYTHONHASHSEED": hash_seed}, check=True)
    result = json.loads(done.stdout.splitlines()[-1])["result"]
    assert result["ok"], result["error"]
    return (out / "model.onnx").read_bytes()


def test_same_job_same_data_version_gives_the_same_onnx_sha256(data_dir: Path,
                                                               tmp_path: Path) -> None:
    # two processes hash strings differently (skl2onnx gathers opset domains in a set);
    # seeds 1 and 3 ordered them differently before the export sorted them
    first = train_in_a_child(data_dir, tmp_path / "a", "1")
    second = train_in_a_child(data_dir, tmp_path / "b", "3")
    assert hashlib.sha256(first).hexdigest() == hashlib.sha256(second).hexdigest()
