"""Score an ONNX model on the candidate's holdout, for the promotion gate.

The gate compares like with like: the champion and the challenger are both
scored here, by their own ONNX sessions, on the same raw holdout rows, with
the same metric code. So a retrain identical to the champion gets exactly the
champion's value (a tie), not a value off by the float32 noise between a
native pipeline and its ONNX export.

The champion may predate the candidate: it may take other columns, or know the
classes in another order. Its inputs are built from the raw holdout by name, and
its class indices are mapped through its ``appliance.classes`` metadata (or,
without it, assumed to be the candidate's). Whatever goes wrong comes back as a
message beside a null metric, never as a failed run: the gate then has nothing
to compare and the service decides.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from appliance.errors import ApplianceError
from appliance.train.child import metrics as m
from appliance.train.child.pipeline import CATEGORICAL, NUMERIC, Feature, prepare_frame
from appliance.train.estimators import CLASSIFICATION


def score_onnx(path: Path, holdout: Any, y_true: Any, *, task: str, classes: list[Any] | None,
               metric: str) -> tuple[float | None, str | None]:
    """(the model's ``metric`` on the holdout, None) or (None, why it could not be scored)."""
    from appliance.train.child.export import check_onnx_bytes, input_columns
    from appliance.train.child.parity import onnx_feeds, onnx_session

    try:
        data = path.read_bytes()
        model = check_onnx_bytes(data)
    except (OSError, ApplianceError) as exc:
        return None, f"the model cannot be read: {getattr(exc, 'message', exc)}"
    meta = {p.key: p.value for p in model.metadata_props}
    try:
        session = onnx_session(data)
        columns = input_columns(model)
        features = []
        for inp in session.get_inputs():
            column = columns[inp.name]
            if column not in holdout.columns:
                return None, f"the model takes a column {column!r} that this data lacks"
            kind = CATEGORICAL if inp.type == "tensor(string)" else NUMERIC
            features.append(Feature(column, str(holdout.schema[column]), kind))
        frame = prepare_frame(holdout, features)
        outputs = session.run(None, onnx_feeds(session, frame, columns))
    except Exception as exc:   # onnxruntime raises its own types; report, do not fail the run
        return None, f"the model could not be run: {type(exc).__name__}: {str(exc)[:300]}"
    n = len(frame)
    if task != CLASSIFICATION:
        pred = outputs[0].reshape(n, -1)[:, 0]
        value = m.regression_metrics(y_true, pred).get(metric)
        return value, None if value is not None else f"{metric} could not be computed"
    assert classes is not None
    try:
        champ_classes = json.loads(meta["appliance.classes"]) if "appliance.classes" in meta \
            else classes
    except ValueError:
        champ_classes = classes
    ours = {str(c): i for i, c in enumerate(classes)}
    labels = outputs[0].reshape(n)
    if labels.dtype.kind in "iu":
        names = [str(champ_classes[i]) if 0 <= i < len(champ_classes) else None for i in labels]
    else:
        names = [str(v) for v in labels]
    import numpy as np

    pred = np.array([ours.get(v, -1) if v is not None else -1 for v in names], dtype=np.int64)
    proba = None
    if len(outputs) > 1 and outputs[1].ndim == 2 and outputs[1].shape[1] == len(champ_classes):
        proba = np.zeros((n, len(classes)), dtype=np.float64)
        for j, c in enumerate(champ_classes):
            if str(c) in ours:
                proba[:, ours[str(c)]] = outputs[1][:, j]
    value = m.classification_metrics(y_true, pred, proba, len(classes)).get(metric)
    return value, None if value is not None else f"{metric} could not be computed for the model"
