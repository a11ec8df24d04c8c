"""The Open Inference Protocol (KServe V2) over the appliance's own scoring path.

Names. A model's V2 inputs are its raw columns, one tensor each, named as the
dataset names them, of shape ``[N]`` or ``[N, 1]`` (``metadata`` says
``[-1, 1]``); a model from elsewhere with a vector input takes that input by
its name with shape ``[N, k]``. A single 2-D tensor ``[N, k]`` whose name is
not a column is read as all ``k`` inputs side by side in the model's input
order (what ONNX-style clients send). An optional ``BYTES`` input named
``request_id`` sets each row's request id (for delayed labels).

Outputs: ``predictions`` (``[N]``: class labels of a classifier, values of a
regressor), ``probabilities`` (``[N, k]`` FP64, a classifier's only, columns in
the order of the output's ``classes`` parameter) and ``request_id``
(``[N]`` BYTES).

Scoring is ``PredictionService.predict``: without a version the alias
(``APPLIANCE_COMPAT_ALIAS``, default ``champion``) answers, with the champion's
canary and shadow routing, the prediction log and the metrics of the predict
route; with a version, that version.
"""

from __future__ import annotations

import json
import math
from typing import Any

from appliance import __version__
from appliance.domain.registry import CHAMPION
from appliance.domain.serving import Prediction
from appliance.domain.v2 import (
    EXTENSIONS,
    PREDICTIONS,
    PROBABILITIES,
    REQUEST_ID,
    V2_OF_KIND,
    ModelMetadata,
    ServerMetadata,
    TensorMetadata,
)
from appliance.errors import InvalidInput, NotFound, UnprocessableInput
from appliance.serve.columns import ColumnRecords
from appliance.serve.service import PredictionService
from appliance.serve.sessions import LoadedModel
from appliance.serve.v2codec import InferAnswer, InferRequest, OutputTensor, Tensor

PLATFORM = "onnxruntime_onnx"
SMALL_BATCH = 64  # rows; binary tensors of at most this many rows are scored as records


def version_number(raw: str | None) -> int | None:
    """A version path segment as a number; ``InvalidInput`` for anything else."""
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 9:
        raise InvalidInput(f"model version {raw[:20]!r} is not a version number",
                           detail={"version": raw[:20]})
    return int(raw)


class V2Service:
    def __init__(self, serving: PredictionService, *, alias: str = CHAMPION) -> None:
        self.serving = serving
        self.sessions = serving.sessions
        self.alias = alias

    def server(self) -> ServerMetadata:
        return ServerMetadata(name="appliance", version=__version__,
                              extensions=list(EXTENSIONS))

    def _resolve(self, model: str, version: int | None) -> LoadedModel:
        try:
            if version is None:
                return self.sessions.resolve(model, alias=self.alias)
            return self.sessions.resolve(model, version=version)
        except NotFound as exc:
            raise NotFound(f"model {model!r} has no version that can answer: {exc.message}",
                           detail={"model": model, "version": version}) from exc

    def ready(self, model: str, version: int | None) -> bool:
        """True once the version that would answer is loaded; NotFound when none would."""
        return self._resolve(model, version) is not None

    def metadata(self, model: str, version: int | None) -> ModelMetadata:
        loaded = self._resolve(model, version)
        inputs = [TensorMetadata(name=inp.column, datatype=V2_OF_KIND.get(inp.kind, inp.kind),
                                 shape=[-1, *(inp.shape or (1,))]) for inp in loaded.inputs]
        outputs = [TensorMetadata(name=PREDICTIONS, datatype=_label_type(loaded), shape=[-1])]
        k = _class_count(loaded)
        if k is not None:
            outputs.append(TensorMetadata(name=PROBABILITIES, datatype="FP64", shape=[-1, k]))
        outputs.append(TensorMetadata(name=REQUEST_ID, datatype="BYTES", shape=[-1]))
        return ModelMetadata(name=model, versions=[str(loaded.version)], platform=PLATFORM,
                             inputs=inputs, outputs=outputs)

    def infer(self, model: str, version: int | None, request: InferRequest) -> InferAnswer:
        """Score the request's tensors through the predict route's path."""
        loaded = self._resolve(model, version)
        alias = self.alias if version is None else None
        records = records_for(loaded, request.inputs)
        answer = self.serving.predict(model, records, alias=alias, version=version)
        return InferAnswer(model_name=model, model_version=str(answer["version"]),
                           id=request.id, outputs=_outputs(answer, request))


def records_for(loaded: LoadedModel, tensors: tuple[Tensor, ...]) -> Any:
    """What ``PredictionService.predict`` scores: the predict route's records (its own
    checks; cheapest for JSON tensors and for a few rows), or, for more than SMALL_BATCH
    rows with a binary tensor, named columns (``ColumnRecords``, numpy all the way)."""
    columns = _named(loaded, tensors)
    n = {t.shape[0] for t in columns.values()}
    if len(n) != 1:
        raise UnprocessableInput("every input needs the same number of rows (its first "
                                 "dimension)", detail={"rows": {k: t.shape[0]
                                                                for k, t in columns.items()}})
    if n.pop() > SMALL_BATCH:
        if any(t.binary for t in columns.values()):
            ids = columns.pop(REQUEST_ID, None)
            return ColumnRecords({name: t.array() for name, t in columns.items()},
                                 None if ids is None else _request_ids(ids))
    elif any(t.binary for t in columns.values()):  # a few rows: plain values are cheaper
        columns = {name: _listed(t) for name, t in columns.items()}
    if REQUEST_ID in columns:
        _request_ids(columns[REQUEST_ID])
    names = list(columns)
    values = [_per_row(t) for t in columns.values()]
    return [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]


def _listed(t: Tensor) -> Tensor:
    if not t.binary:
        return t
    return Tensor(t.name, t.datatype, t.shape, t.values.reshape(-1).tolist())


def _named(loaded: LoadedModel, tensors: tuple[Tensor, ...]) -> dict[str, Tensor]:
    """Tensors by column; a lone 2-D tensor that names no column is split into the
    model's inputs, in order."""
    columns = {t.name: t for t in tensors}
    features = [t for t in tensors if t.name != REQUEST_ID]
    known = {inp.column for inp in loaded.inputs}
    if len(features) != 1 or len(loaded.inputs) < 2 or features[0].name in known:
        return columns
    lone = features[0]
    k = len(loaded.inputs)
    if len(lone.shape) != 2 or lone.shape[1] != k or not all(i.scalar for i in loaded.inputs):
        raise UnprocessableInput(
            f"input {lone.name!r} is not a column of {loaded.model}; one tensor of all "
            f"features has shape [N, {k}] (got {list(lone.shape)})", detail={"field": lone.name})
    split: dict[str, Tensor] = {}
    for j, inp in enumerate(loaded.inputs):
        part = lone.values[:, j] if lone.binary else lone.values[j::k]
        split[inp.column] = Tensor(inp.column, lone.datatype, (lone.shape[0],), part)
    if REQUEST_ID in columns:
        split[REQUEST_ID] = columns[REQUEST_ID]
    return split


_FLOATS = frozenset({"FP16", "FP32", "FP64"})
_ONE_A_ROW = ((), (1,))


def _per_row(t: Tensor) -> list[Any]:
    """A JSON tensor's values one entry a row: a value, or the row's nested list; a NaN
    in a float tensor is missing (``null`` on the predict route), as in binary tensors."""
    values, shape = t.values, t.shape
    if t.datatype in _FLOATS and any(map(math.isnan, values)):
        values = [None if v != v else v for v in values]  # NaN is missing, as null is
    if shape[1:] in _ONE_A_ROW or math.prod(shape[1:]) == 1:
        return values
    n = shape[0]
    if len(shape) == 2:
        k = shape[1]
        return [values[i * k:(i + 1) * k] for i in range(n)]
    rows: list[Any] = t.array().tolist()
    return rows


def _request_ids(t: Tensor) -> list[str]:
    if t.datatype != "BYTES" or len(t.shape) not in (1, 2) or math.prod(t.shape[1:]) != 1:
        raise UnprocessableInput(f"{REQUEST_ID} is BYTES of shape [N] or [N, 1]",
                                 detail={"field": REQUEST_ID})
    ids = list(t.values) if not t.binary else t.values.reshape(-1).tolist()
    if not all(0 < len(r) <= 100 for r in ids):
        raise UnprocessableInput(f"each {REQUEST_ID} is 1-100 characters",
                                 detail={"field": REQUEST_ID})
    return ids


def _outputs(answer: Prediction, request: InferRequest) -> tuple[OutputTensor, ...]:
    predictions = answer["predictions"]
    n = len(predictions)
    shape: tuple[int, ...] = (n,)
    if n and isinstance(predictions[0], list):  # a vector a row (a model from elsewhere)
        import numpy as np

        matrix = np.array(predictions)
        shape, predictions = matrix.shape, matrix.reshape(-1).tolist()
    arrays: dict[str, tuple[str, tuple[int, ...], list[Any], dict[str, Any] | None]] = {
        PREDICTIONS: (_type_of(predictions), shape, predictions, None)}
    probabilities = answer["probabilities"]
    if probabilities is not None:
        classes = list(probabilities[0])
        flat = [p for row in probabilities for p in row.values()]
        arrays[PROBABILITIES] = ("FP64", (n, len(classes)), flat,
                                 {"classes": json.dumps(classes)})
    arrays[REQUEST_ID] = ("BYTES", (n,), answer["request_ids"], None)
    wanted = request.outputs
    if wanted is None:
        return tuple(OutputTensor(name, dt, sh, v, request.binary_output, p)
                     for name, (dt, sh, v, p) in arrays.items())
    out = []
    for want in wanted:
        if want.name not in arrays:
            raise UnprocessableInput(f"unknown output {want.name!r}; this model answers "
                                     f"{sorted(arrays)}", detail={"output": want.name})
        dt, sh, v, p = arrays[want.name]
        out.append(OutputTensor(want.name, dt, sh, v,
                                request.binary_output if want.binary is None else want.binary, p))
    return tuple(out)


def _type_of(values: list[Any]) -> str:
    kinds = set(map(type, values))
    if kinds == {bool}:
        return "BOOL"
    if kinds <= {int}:
        return "INT64"
    if kinds <= {int, float}:
        return "FP64"
    return "BYTES"


def _label_type(loaded: LoadedModel) -> str:
    if loaded.classes is not None:
        return _type_of(list(loaded.classes))
    if loaded.reading is None:
        return "FP64"
    first = loaded.session.get_outputs()[0].type
    return {"tensor(string)": "BYTES", "tensor(int64)": "INT64",
            "tensor(int32)": "INT64"}.get(first, "FP64")


def _class_count(loaded: LoadedModel) -> int | None:
    if loaded.classes is not None:
        return len(loaded.classes) if len(loaded.outputs) > 1 else None
    if loaded.reading is not None and loaded.reading.classifier:
        shape = loaded.session.get_outputs()[1].shape
        last = shape[-1] if isinstance(shape, list) and len(shape) == 2 else None
        return last if isinstance(last, int) else -1
    return None
