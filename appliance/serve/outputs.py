"""ONNX outputs -> predictions (one a row) and, for a classifier, probabilities.

The appliance's own exports say what they are: a classifier's ``label`` is an
index into its ``appliance.classes``, its ``probabilities`` a ``[batch, k]``
matrix; a regressor's one output is ``[batch, 1]``. A model from elsewhere is
read by the shape of its outputs (see ``sessions.Outputs``): labels as they
come (numbers or text), probabilities keyed by class from a ZipMap or by
position from a matrix, any other first output as one value a row or a nested
list a row. An output that does not hold one entry a row is a 422 naming it,
never a 500.
"""

from __future__ import annotations

from typing import Any

from appliance.errors import UnprocessableInput
from appliance.serve.sessions import LoadedModel

Probabilities = list[dict[str, float]] | None


def decode(loaded: LoadedModel, outputs: list[Any], n: int) -> tuple[list[Any], Probabilities]:
    reading = loaded.reading
    if reading is None:  # our own export: the fast path
        return _own(loaded, outputs)
    if reading.classifier:
        labels = _rows(loaded, outputs[0], n, 0)
        predictions = [_item(x) for x in labels.reshape(n).tolist()]
        if reading.zipmap:
            maps = outputs[1]
            if not isinstance(maps, list) or len(maps) != n:
                raise _unreadable(loaded, 1, f"{type(maps).__name__} of {_len(maps)} entries", n)
            return predictions, [{str(k): float(v) for k, v in m.items()} for m in maps]
        proba = _rows(loaded, outputs[1], n, 1).reshape(n, -1)
        names = [str(i) for i in range(proba.shape[1])]
        return predictions, [dict(zip(names, row, strict=True)) for row in proba.tolist()]
    first = _rows(loaded, outputs[0], n, 0)
    per_row = first.reshape(n, -1)
    if per_row.shape[1] == 1:
        return [_item(x) for x in per_row.reshape(n).tolist()], None
    return first.tolist(), None


def _own(loaded: LoadedModel, outputs: list[Any]) -> tuple[list[Any], Probabilities]:
    first = outputs[0]
    if loaded.classes is not None or len(outputs) > 1:
        labels = [int(x) for x in first.reshape(-1).tolist()]
        classes = loaded.classes
        predictions = [classes[i] if classes is not None and 0 <= i < len(classes) else i
                       for i in labels]
        probabilities = None
        if len(outputs) > 1:
            proba = outputs[1]
            names = [str(c) for c in classes] if classes is not None else \
                [str(i) for i in range(proba.shape[1])]
            probabilities = [dict(zip(names, row, strict=True))  # tolist() gives floats
                             for row in proba.tolist()]
        return predictions, probabilities
    return [float(x) for x in first.reshape(-1).tolist()], None


def _rows(loaded: LoadedModel, value: Any, n: int, index: int) -> Any:
    """``value`` as an array with one entry a row, or 422 naming the output."""
    import numpy as np

    if not isinstance(value, np.ndarray) or value.ndim == 0 or value.shape[0] != n:
        shape = list(value.shape) if isinstance(value, np.ndarray) else type(value).__name__
        raise _unreadable(loaded, index, f"shape {shape}", n)
    return value


def _unreadable(loaded: LoadedModel, index: int, got: str, n: int) -> UnprocessableInput:
    name = loaded.outputs[index] if index < len(loaded.outputs) else str(index)
    return UnprocessableInput(
        f"{loaded.model} v{loaded.version} answered output {name!r} with {got} for {n} rows; "
        "serving needs one entry a row", detail={"output": name})


def _item(x: Any) -> Any:
    """A label or value as JSON takes it (numpy bytes and strings become text)."""
    return x.decode() if isinstance(x, bytes) else x


def _len(x: Any) -> int | None:
    try:
        return len(x)
    except TypeError:
        return None
