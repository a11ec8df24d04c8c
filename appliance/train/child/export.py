"""ONNX export of a fitted pipeline, and the registry's check of ONNX bytes.

One graph input per raw column: numeric columns as ``float`` ``[None, 1]``
(float32; missing = NaN), categorical columns as ``string`` ``[None, 1]``
(missing = ``""``). Classifiers have two outputs, ``label`` (int64 class index
into the run's ``classes``) and ``probabilities`` (float32, ``[None, k]``, no
ZipMap); regressors one, ``variable`` (float32, ``[None, 1]``).

:func:`check_onnx_bytes` parses bytes as an ONNX protobuf only (parsing a protobuf
runs no code) and never unpickles anything.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from appliance.errors import InvalidInput
from appliance.train.child.pipeline import NUMERIC, Feature
from appliance.train.estimators import CLASSIFICATION, EstimatorInfo

TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
ALLOWED_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "com.microsoft"})
MAX_ONNX_BYTES = 1 << 30
_registered = threading.Lock()
_done = False


def register_xgboost_converters() -> None:
    """Teach skl2onnx the XGBoost estimators with onnxmltools' converters (once per process)."""
    global _done
    with _registered:
        if _done:
            return
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
        from skl2onnx import update_registered_converter
        from skl2onnx.common.shape_calculator import (
            calculate_linear_classifier_output_shapes,
            calculate_linear_regressor_output_shapes,
        )
        from xgboost import XGBClassifier, XGBRegressor

        update_registered_converter(
            XGBClassifier, "XGBoostXGBClassifier", calculate_linear_classifier_output_shapes,
            convert_xgboost, options={"nocl": [True, False], "zipmap": [True, False, "columns"]})
        update_registered_converter(
            XGBRegressor, "XGBoostXGBRegressor", calculate_linear_regressor_output_shapes,
            convert_xgboost)
        _done = True


def export_onnx(pipeline: Any, features: list[Feature], info: EstimatorInfo, *,
                classes: list[Any] | None = None, metadata: dict[str, str] | None = None
                ) -> tuple[bytes, dict[str, Any]]:
    """(single-file ONNX bytes, signature) for a fitted pipeline."""
    import onnx
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    if info.flavor == "xgboost":
        register_xgboost_converters()
    inputs = [(f.name, FloatTensorType([None, 1]) if f.kind == NUMERIC else StringTensorType([None, 1]))
              for f in features]
    estimator = pipeline.steps[-1][1]
    options = {id(estimator): {"zipmap": False}} if info.task == CLASSIFICATION else None
    try:
        model = convert_sklearn(pipeline, initial_types=inputs, options=options,
                                target_opset=TARGET_OPSET, name=info.cls)
    except Exception as exc:   # converters raise anything; the model cannot be exported
        raise InvalidInput(f"the {info.cls} model could not be exported to ONNX: "
                           f"{type(exc).__name__}: {str(exc)[:500]}",
                           detail={"field": "model.params"}) from exc
    # skl2onnx renames inputs whose column names it finds unsafe ("a/b" -> "a_b"); the
    # inputs keep the features' order, so record which column feeds which input
    if len(model.graph.input) != len(features):
        raise InvalidInput("the exported model's inputs do not match the feature columns",
                           detail={"field": "features"})
    columns = {v.name: f.name for v, f in zip(model.graph.input, features, strict=True)}
    meta = {"appliance.task": info.task, "appliance.estimator": info.name,
            "appliance.columns": json.dumps(columns)}
    if classes is not None:
        meta["appliance.classes"] = json.dumps(classes)
    meta.update(metadata or {})
    onnx.helper.set_model_props(model, meta)
    data = canonical(model).SerializeToString()
    check_onnx_bytes(data)
    return data, signature_of(model)


def input_columns(model: Any) -> dict[str, str]:
    """ONNX input name -> raw column name (identity for models without our metadata)."""
    meta = {p.key: p.value for p in model.metadata_props}
    names = [v.name for v in model.graph.input]
    try:
        mapping = json.loads(meta.get("appliance.columns", "{}"))
    except ValueError:
        mapping = {}
    if not isinstance(mapping, dict):
        mapping = {}
    return {n: str(mapping.get(n, n)) for n in names}


def signature_of(model: Any) -> dict[str, Any]:
    """Inputs carry the raw ``column`` that feeds them (it differs from ``name`` when
    skl2onnx had to rename an unsafe column name); types are names (see ``signature``)."""
    from appliance.train.child.signature import describe, graph_inputs

    columns = input_columns(model)
    return {"inputs": [{**describe(v), "column": columns[v.name]} for v in graph_inputs(model)],
            "outputs": [describe(v) for v in model.graph.output]}


def canonical(model: Any) -> Any:
    """The model with its order-free lists sorted, so the same model gives the same bytes.

    skl2onnx collects the operator domains in a set, so ``opset_import``'s order follows
    Python's string hashing, which differs between processes (``PYTHONHASHSEED``): two
    trainings of the same job on the same data would otherwise get two sha256s.
    """
    opsets = sorted((o.domain, o.version) for o in model.opset_import)
    del model.opset_import[:]
    for domain, version in opsets:
        model.opset_import.add(domain=domain, version=version)
    props = sorted((p.key, p.value) for p in model.metadata_props)
    del model.metadata_props[:]
    for key, value in props:
        model.metadata_props.add(key=key, value=value)
    return model


def check_onnx_bytes(data: bytes) -> Any:
    """Parse and check ONNX bytes; InvalidInput for anything that is not a usable single-file model."""
    import onnx
    from google.protobuf.message import DecodeError

    if not isinstance(data, bytes | bytearray) or not data:
        raise InvalidInput("the model file is empty", detail={"field": "onnx"})
    if len(data) > MAX_ONNX_BYTES:
        raise InvalidInput(f"the model file is over {MAX_ONNX_BYTES >> 20} MB",
                           detail={"field": "onnx"})
    if data[:1] == b"\x80" or data[:2] == b"PK":
        what = "a Python pickle" if data[:1] == b"\x80" else "a zip archive (joblib/pickle?)"
        raise InvalidInput(f"the model file is {what}, not ONNX; only ONNX models are accepted",
                           detail={"field": "onnx"})
    model = onnx.ModelProto()
    try:
        model.ParseFromString(bytes(data))
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise InvalidInput("the model file is not an ONNX model (it does not parse as one)",
                           detail={"field": "onnx"}) from exc
    if model.ir_version <= 0 or not model.opset_import or not model.graph.output \
            or not model.graph.node:
        raise InvalidInput("the model file is not an ONNX model (no graph, outputs or opset)",
                           detail={"field": "onnx"})
    domains = {op.domain for op in model.opset_import}
    if not domains <= ALLOWED_DOMAINS:
        raise InvalidInput(f"the model uses operator domains that are not allowed: "
                           f"{sorted(domains - ALLOWED_DOMAINS)}", detail={"field": "onnx"})
    external = [t.name for t in _all_tensors(model)
                if t.data_location == onnx.TensorProto.EXTERNAL or len(t.external_data)]
    if external:
        raise InvalidInput(f"the model keeps tensor data in external files ({', '.join(external[:5])}); "
                           "only single-file ONNX models are accepted", detail={"field": "onnx"})
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError) as exc:
        raise InvalidInput(f"the ONNX checker refused the model: {str(exc)[:500]}",
                           detail={"field": "onnx"}) from exc
    return model


def _all_tensors(model: Any) -> list[Any]:
    """Every TensorProto in the model: initializers and attributes, subgraphs and functions too."""
    tensors: list[Any] = []

    def graph(g: Any) -> None:
        tensors.extend(g.initializer)
        tensors.extend(s.values for s in g.sparse_initializer)
        tensors.extend(s.indices for s in g.sparse_initializer)
        nodes(g.node)

    def nodes(ns: Any) -> None:
        for n in ns:
            for a in n.attribute:
                if a.HasField("t"):
                    tensors.append(a.t)
                tensors.extend(a.tensors)
                if a.HasField("g"):
                    graph(a.g)
                for sub in a.graphs:
                    graph(sub)

    graph(model.graph)
    for fn in model.functions:
        nodes(fn.node)
    return tensors
