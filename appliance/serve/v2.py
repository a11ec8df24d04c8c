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
        records = ColumnRecords(*_columns(loaded, request.inputs))
        alias = self.alias if version is None else None
        answer = self.serving.predict(model, records, alias=alias, version=version)
        return InferAnswer(model_name=model, model_version=str(answer["version"]),
                           id=request.id, outputs=_outputs(answer, request))


def _columns(loaded: LoadedModel, tensors: tuple[Tensor, ...]
             ) -> tuple[dict[str, Any], list[str] | None]:
    """(column -> array, request ids) from the request's tensors, named as the model's
    columns; a lone 2-D tensor that names no column is split into the inputs in order."""
    columns = {t.name: t.array for t in tensors if t.name != REQUEST_ID}
    ids = next((t for t in tensors if t.name == REQUEST_ID), None)
    request_ids = None
    if ids is not None:
        if ids.datatype != "BYTES" or ids.array.ndim not in (1, 2) or (
                ids.array.ndim == 2 and ids.array.shape[1] != 1):
            raise UnprocessableInput(f"{REQUEST_ID} is BYTES of shape [N] or [N, 1]",
                                     detail={"field": REQUEST_ID})
        request_ids = ids.array.reshape(-1).tolist()
        if not all(0 < len(r) <= 100 for r in request_ids):
            raise UnprocessableInput(f"each {REQUEST_ID} is 1-100 characters",
                                     detail={"field": REQUEST_ID})
    known = {inp.column for inp in loaded.inputs}
    if len(columns) == 1 and len(loaded.inputs) > 1:
        (name, array), = columns.items()
        if name not in known:
            if array.ndim != 2 or array.shape[1] != len(loaded.inputs) or \
                    not all(inp.scalar for inp in loaded.inputs):
                raise UnprocessableInput(
                    f"input {name!r} is not a column of {loaded.model}; one tensor of all "
                    f"features has shape [N, {len(loaded.inputs)}] (got {list(array.shape)})",
                    detail={"field": name})
            columns = {inp.column: array[:, j] for j, inp in enumerate(loaded.inputs)}
    return columns, request_ids


def _outputs(answer: Prediction, request: InferRequest) -> tuple[OutputTensor, ...]:
    import numpy as np

    predictions = answer["predictions"]
    label_type = _type_of(predictions)
    arrays: dict[str, tuple[str, Any, dict[str, Any] | None]] = {
        PREDICTIONS: (label_type, np.array(predictions, dtype=_DTYPE[label_type]), None)}
    probabilities = answer["probabilities"]
    if probabilities is not None:
        classes = list(probabilities[0])
        matrix = np.array([list(p.values()) for p in probabilities], dtype=np.float64)
        arrays[PROBABILITIES] = ("FP64", matrix, {"classes": json.dumps(classes)})
    arrays[REQUEST_ID] = ("BYTES", np.array(answer["request_ids"], dtype=object), None)
    wanted = request.outputs
    if wanted is None:
        return tuple(OutputTensor(name, dt, a, request.binary_output, p)
                     for name, (dt, a, p) in arrays.items())
    out = []
    for want in wanted:
        if want.name not in arrays:
            raise UnprocessableInput(f"unknown output {want.name!r}; this model answers "
                                     f"{sorted(arrays)}", detail={"output": want.name})
        dt, a, p = arrays[want.name]
        out.append(OutputTensor(want.name, dt, a,
                                request.binary_output if want.binary is None else want.binary, p))
    return tuple(out)


_DTYPE = {"INT64": "int64", "FP64": "float64", "BOOL": "bool", "BYTES": "object"}


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
