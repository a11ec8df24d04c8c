"""ONNX signatures: readable type names, shapes, and whether serving can feed a model.

A signature lists a model's inputs and outputs as ``{"name", "type", "shape"}``
(inputs also name the ``column`` that feeds them). ``type`` is a name, never an
ONNX enum number: a tensor's element type (``float``, ``double``, ``int64``,
``string``, ``bool``...), anything else in onnxruntime's notation
(``seq(map(int64,tensor(float)))``). ``shape`` has ``null`` for a dimension of
no fixed size (the batch).

Serving feeds a model from records, one row per batch entry, so
:func:`check_servable` refuses, with a reason per problem, a model it could
never feed: an input that is not a tensor or has an element type JSON cannot
carry, a fixed batch size, a dimension of unknown size after the batch, or a
first output that is not a tensor. An input of per-row shape ``[k]`` (a
*vector* input, e.g. ``float [None, 4]`` from a plain scikit-learn export) is
fed from a nested list, or, when the upload names its ``features``, from
records keyed by those names.
"""

from __future__ import annotations

from typing import Any

from appliance.errors import InvalidInput

# element types a JSON or CSV value can be turned into
SERVABLE_ELEMENTS = frozenset({
    "float", "double", "float16", "int8", "int16", "int32", "int64", "uint8", "uint16",
    "uint32", "uint64", "bool", "string"})
MAX_FEATURE_NAME = 200
RESERVED_FIELDS = frozenset({"request_id"})


def element_name(elem_type: int) -> str:
    """``1`` -> ``float``: the lower-case TensorProto name (``undefined`` for 0)."""
    import onnx

    try:
        return str(onnx.TensorProto.DataType.Name(elem_type)).lower()
    except ValueError:
        return f"unknown({elem_type})"


def type_name(type_proto: Any, *, top: bool = True) -> str:
    """A TypeProto as text: ``float`` for a tensor at the top, else onnxruntime's notation."""
    which = type_proto.WhichOneof("value")
    if which == "tensor_type":
        elem = element_name(type_proto.tensor_type.elem_type)
        return elem if top else f"tensor({elem})"
    if which == "sequence_type":
        return f"seq({type_name(type_proto.sequence_type.elem_type, top=False)})"
    if which == "map_type":
        key = element_name(type_proto.map_type.key_type)
        return f"map({key},{type_name(type_proto.map_type.value_type, top=False)})"
    if which == "optional_type":
        return f"optional({type_name(type_proto.optional_type.elem_type, top=False)})"
    if which == "sparse_tensor_type":
        return f"sparse_tensor({element_name(type_proto.sparse_tensor_type.elem_type)})"
    return "unknown"


def shape_of(type_proto: Any) -> list[int | None] | None:
    """A tensor's dimensions (None where not fixed), or None when it declares no shape."""
    if type_proto.WhichOneof("value") != "tensor_type" or \
            not type_proto.tensor_type.HasField("shape"):
        return None
    return [int(d.dim_value) if d.HasField("dim_value") else None
            for d in type_proto.tensor_type.shape.dim]


def graph_inputs(model: Any) -> list[Any]:
    """The inputs a caller feeds: graph inputs that are not initializers (old IR lists both)."""
    initialized = {t.name for t in model.graph.initializer}
    return [v for v in model.graph.input if v.name not in initialized]


def describe(value: Any) -> dict[str, Any]:
    shape = shape_of(value.type)
    return {"name": value.name, "type": type_name(value.type),
            "shape": shape if shape is not None else []}


def type_label(entry: Any) -> Any:
    """A stored signature entry's type as a name: old rows kept the ONNX enum number."""
    kind = entry.get("type") if isinstance(entry, dict) else None
    if isinstance(kind, int) and not isinstance(kind, bool):
        return element_name(kind) if kind else "not a tensor"
    return kind


def readable(signature: Any) -> Any:
    """A stored signature with every ``type`` a name (rows from before names were kept)."""
    if not isinstance(signature, dict):
        return signature
    out = dict(signature)
    for side in ("inputs", "outputs"):
        entries = signature.get(side)
        if isinstance(entries, list):
            out[side] = [{**e, "type": type_label(e)} if isinstance(e, dict) else e
                         for e in entries]
    return out


def check_features(model: Any, features: list[str] | None) -> list[str] | None:
    """The upload's feature names for the model's one vector input, checked, or None."""
    if features is None:
        return None
    inputs = graph_inputs(model)
    shape = shape_of(inputs[0].type) if len(inputs) == 1 else None
    if shape is None or len(shape) != 2 or shape[1] is None:
        raise InvalidInput("feature names apply to a model with one input of shape [batch, k] "
                           f"only; this one has {len(inputs)} input(s)",
                           detail={"field": "features", "reason": "not_a_vector_input"})
    if len(features) != shape[1]:
        raise InvalidInput(f"input {inputs[0].name!r} takes {shape[1]} values a row, but "
                           f"{len(features)} feature names were given",
                           detail={"field": "features", "reason": "count"})
    for name in features:
        if not name or len(name) > MAX_FEATURE_NAME or not name.isprintable():
            raise InvalidInput(f"a feature name is 1-{MAX_FEATURE_NAME} printable characters: "
                               f"{name[:50]!r}", detail={"field": "features"})
        if name in RESERVED_FIELDS:
            raise InvalidInput(f"{name!r} is reserved; choose another feature name",
                               detail={"field": "features"})
    if len(set(features)) != len(features):
        dup = next(n for n in features if features.count(n) > 1)
        raise InvalidInput(f"feature name {dup!r} is given twice", detail={"field": "features"})
    return list(features)


def check_servable(model: Any) -> None:
    """InvalidInput (``reason: not_servable``) naming each reason serving could not feed it."""
    problems = [p for v in graph_inputs(model) for p in _input_problems(v)]
    if not graph_inputs(model):
        problems.append("it has no inputs to feed")
    if model.graph.output and model.graph.output[0].type.WhichOneof("value") != "tensor_type":
        first = model.graph.output[0]
        problems.append(f"its first output {first.name!r} is {type_name(first.type)}, "
                        "not a tensor of predictions")
    if problems:
        raise InvalidInput("this ONNX model cannot be served: " + "; ".join(problems),
                           detail={"field": "onnx", "reason": "not_servable",
                                   "problems": problems})


def _input_problems(value: Any) -> list[str]:
    name = value.name
    kind = type_name(value.type)
    if value.type.WhichOneof("value") != "tensor_type":
        return [f"input {name!r} is {kind}; only tensor inputs can be fed from records"]
    if kind not in SERVABLE_ELEMENTS:
        return [f"input {name!r} holds {kind} values, which JSON or CSV cannot carry"]
    shape = shape_of(value.type)
    if shape is None or not shape:
        return [f"input {name!r} declares no batch dimension (shape {shape or []}); export it "
                "with a first dimension of no fixed size"]
    if shape[0] is not None:
        return [f"input {name!r} has a fixed batch size of {shape[0]}; export it with a dynamic "
                "first dimension (None in skl2onnx, dynamic_axes in torch.onnx.export)"]
    if any(d is None or d <= 0 for d in shape[1:]):
        return [f"input {name!r} has shape {shape}: every dimension after the batch must have "
                "a fixed size"]
    return []
