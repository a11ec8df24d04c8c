"""Parity: the exported ONNX graph must predict what the native pipeline predicts.

Rows checked: the holdout, plus, for tree models, copies of holdout rows with one
numeric feature set exactly at a split threshold (as float32) and one float32
step either side of it (``np.nextafter``), where a float32/float64 slip would
send a row down the other branch.

Tolerances (:data:`TOLERANCES`, per flavor and task) are floors, widened to what
float32 arithmetic can do on this model (:func:`float32_bound`):

- classification: every probability within ``max(1e-5, B)`` absolute; labels
  identical, except on a row whose two largest native probabilities are within
  ``2 * max(1e-5, B)`` of each other (a near tie that float32 may break either way);
- regression: ``|onnx - native| <= max(1e-4 * max(1, |native|), B)``.

``B = (T + 2) * u * S``: the ONNX runtime adds the model's ``T`` accumulated
terms (trees of an ensemble, boosting rounds, coefficients of a linear model,
neighbours) in float32, whose unit roundoff is ``u = 2**-24``. Summing ``T``
terms recursively errs by at most ``(T - 1) * u * sum(|term|)`` to first order
(Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., eq. 4.4);
storing each term in float32 adds ``u * sum(|term|)`` and the final scaling
(averaging the trees, the link function) ``2u`` more, hence ``T + 2``.
``sum(|term|)`` is bounded by ``S``, the output scale: 1 for probabilities (the
trees' votes are non-negative and add up to at most 1), and for a regressor the
largest ``|native|`` output over the checked rows (at least 1). A 1,500-tree
random forest gets ``B ~ 9e-5``: its 1e-5 floor would fail on float32 noise,
while a model that is really different (a tree missing, other parameters) still
misses by far more.
"""

from __future__ import annotations

from typing import Any

from appliance.train.child.pipeline import Feature, numeric_feature_positions
from appliance.train.estimators import CLASSIFICATION, EstimatorInfo

_CLASSIFICATION_TOL = {"labels": "identical unless a near tie", "probability_abs": 1e-5}
_REGRESSION_TOL = {"value_rel": 1e-4, "rule": "|onnx - native| <= 1e-4 * max(1, |native|)"}
TOLERANCES: dict[str, dict[str, dict[str, Any]]] = {
    "sklearn": {"classification": _CLASSIFICATION_TOL, "regression": _REGRESSION_TOL},
    "xgboost": {"classification": _CLASSIFICATION_TOL, "regression": _REGRESSION_TOL},
}
FLOAT32_UNIT_ROUNDOFF = 2.0 ** -24
MAX_THRESHOLDS = 400         # split thresholds probed (3 rows each)
MAX_HOLDOUT_ROWS = 200_000
WORST_ROWS = 5


def accumulated_terms(estimator: Any, info: EstimatorInfo) -> int:
    """How many terms the model adds up for one output: trees, rounds, coefficients..."""
    import numpy as np

    if info.flavor == "xgboost":
        booster = estimator.get_booster()
        parallel = estimator.get_params().get("num_parallel_tree") or 1
        return max(1, int(booster.num_boosted_rounds()) * int(parallel))
    if hasattr(estimator, "estimators_"):   # forests: trees; gradient boosting: stages
        return max(1, int(np.asarray(estimator.estimators_, dtype=object).shape[0]))
    if hasattr(estimator, "tree_"):
        return 1
    if hasattr(estimator, "coef_"):
        return max(1, int(np.asarray(estimator.coef_).shape[-1]))
    if hasattr(estimator, "n_neighbors"):
        return max(1, int(estimator.n_neighbors))
    return max(1, int(getattr(estimator, "n_features_in_", 1)))


def float32_bound(terms: int, scale: float) -> float:
    """``(T + 2) * u * S``: what float32 accumulation of ``terms`` can err by (see above)."""
    return (terms + 2) * FLOAT32_UNIT_ROUNDOFF * max(1.0, scale)


def onnx_session(data: bytes) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])


def onnx_feeds(session: Any, frame: Any, columns: dict[str, str]) -> dict[str, Any]:
    """Inputs for ``session`` from a prepared frame (see ``pipeline.prepare_frame``).

    ``columns`` maps each ONNX input name to the frame column that feeds it.
    """
    import numpy as np

    feeds = {}
    for inp in session.get_inputs():
        col = frame[columns.get(inp.name, inp.name)]
        if inp.type == "tensor(string)":
            arr = col.fillna("").astype(str).to_numpy(dtype=object)
        elif inp.type == "tensor(int64)":
            arr = col.fillna(0).to_numpy(dtype=np.int64)
        elif inp.type == "tensor(double)":
            arr = col.to_numpy(dtype=np.float64)
        else:
            arr = col.to_numpy(dtype=np.float32)
        feeds[inp.name] = arr.reshape(-1, 1)
    return feeds


def tree_thresholds(estimator: Any, info: EstimatorInfo) -> list[tuple[int, float]]:
    """(transformed feature index, threshold) for every split of a fitted tree model."""
    import numpy as np

    pairs: set[tuple[int, float]] = set()
    if info.flavor == "xgboost":
        df = estimator.get_booster().trees_to_dataframe()
        df = df[df["Feature"] != "Leaf"]
        for name, split in zip(df["Feature"], df["Split"], strict=True):
            if isinstance(name, str) and name.startswith("f") and name[1:].isdigit():
                pairs.add((int(name[1:]), float(split)))
        return sorted(pairs)
    if hasattr(estimator, "tree_"):
        trees = [estimator]
    else:
        trees = list(np.asarray(estimator.estimators_, dtype=object).ravel())
    for t in trees:
        tree = t.tree_
        mask = tree.feature >= 0
        pairs.update(zip(tree.feature[mask].tolist(), tree.threshold[mask].tolist(), strict=True))
    return sorted(pairs)


def threshold_rows(pipeline: Any, info: EstimatorInfo, features: list[Feature],
                   holdout: Any) -> tuple[Any, list[dict[str, Any]]]:
    """Copies of holdout rows placed at and one float32 step either side of split thresholds."""
    import numpy as np

    empty = holdout.iloc[:0].copy()
    if not info.tree_based or info.needs_scaling or len(holdout) == 0:
        return empty, []
    positions = numeric_feature_positions(features)
    pairs = [(positions[i], t) for i, t in tree_thresholds(pipeline.steps[-1][1], info)
             if i in positions]
    if not pairs:
        return empty, []
    if len(pairs) > MAX_THRESHOLDS:
        pick = np.linspace(0, len(pairs) - 1, MAX_THRESHOLDS).round().astype(int)
        pairs = [pairs[i] for i in pick]
    values, meta = [], []
    for column, threshold in pairs:
        at = np.float32(threshold)
        for v in (np.nextafter(at, np.float32(-np.inf)), at, np.nextafter(at, np.float32(np.inf))):
            if np.isfinite(v):
                values.append((column, float(v)))
                meta.append({"feature": column, "value": float(v), "threshold": float(threshold)})
    base = np.arange(len(values)) % len(holdout)
    rows = holdout.iloc[base].reset_index(drop=True).copy()
    for i, (column, v) in enumerate(values):
        rows.iat[i, rows.columns.get_loc(column)] = v
    return rows, meta


def check_parity(pipeline: Any, onnx_bytes: bytes, holdout: Any, features: list[Feature],
                 info: EstimatorInfo) -> dict[str, Any]:
    """The parity report for ``holdout`` (a prepared frame) plus threshold rows."""
    import numpy as np
    import pandas as pd

    holdout = holdout.iloc[:MAX_HOLDOUT_ROWS].reset_index(drop=True)
    extra, extra_meta = threshold_rows(pipeline, info, features, holdout)
    frame = pd.concat([holdout, extra], ignore_index=True) if len(extra) else holdout
    tol = TOLERANCES[info.flavor][info.task]
    terms = accumulated_terms(pipeline.steps[-1][1], info)
    session = onnx_session(onnx_bytes)
    columns = {inp.name: f.name for inp, f in zip(session.get_inputs(), features, strict=True)}
    outputs = session.run(None, onnx_feeds(session, frame, columns))
    n = len(frame)
    native_label: Any = None
    onnx_label: Any = None
    ties = 0
    if info.task == CLASSIFICATION:
        native_label = np.asarray(pipeline.predict(frame)).astype(np.int64)
        onnx_label = np.asarray(outputs[0]).reshape(n).astype(np.int64)
        onnx_out = np.asarray(outputs[1], dtype=np.float64).reshape(n, -1)
        if hasattr(pipeline, "predict_proba"):
            native = np.asarray(pipeline.predict_proba(frame), dtype=np.float64)
            bound = float32_bound(terms, 1.0)
            allowed = np.full(n, max(tol["probability_abs"], bound))
            top2 = np.sort(native, axis=1)[:, -2:] if native.shape[1] > 1 else None
            near_tie = (top2[:, 1] - top2[:, 0] <= 2 * allowed) if top2 is not None \
                else np.zeros(n, dtype=bool)
        else:    # no probabilities (e.g. a hinge loss): compare decision scores, relatively
            native = np.asarray(pipeline.decision_function(frame), dtype=np.float64).reshape(n, -1)
            scale = float(np.abs(native).max()) if n else 1.0
            bound = float32_bound(terms, scale)
            allowed = np.maximum(
                _REGRESSION_TOL["value_rel"] * np.maximum(1.0, np.abs(native).max(axis=1)), bound)
            near_tie = np.zeros(n, dtype=bool)
        if native.shape[1] == 1 and onnx_out.shape[1] == 2:
            onnx_out = onnx_out[:, 1:]
        differ = native_label != onnx_label
        ties = int((differ & near_tie).sum())
        mismatch = differ & ~near_tie
    else:
        native = np.asarray(pipeline.predict(frame), dtype=np.float64).reshape(n, 1)
        onnx_out = np.asarray(outputs[0], dtype=np.float64).reshape(n, -1)
        scale = float(np.nanmax(np.abs(native))) if n and np.isfinite(native).any() else 1.0
        bound = float32_bound(terms, scale)
        allowed = np.maximum(tol["value_rel"] * np.maximum(1.0, np.abs(native[:, 0])), bound)
        mismatch = np.zeros(n, dtype=bool)
    if native.shape != onnx_out.shape:
        raise ValueError(f"ONNX output shape {onnx_out.shape} differs from native {native.shape}")
    diff = np.abs(native - onnx_out)
    both_nan = np.isnan(native) & np.isnan(onnx_out)
    diff = np.where(both_nan, 0.0, np.where(np.isnan(diff), np.inf, diff)).max(axis=1)
    bad = mismatch | (diff > allowed)
    badness = np.where(mismatch, np.inf, diff / allowed)
    worst = [i for i in np.argsort(-badness, kind="stable")[:WORST_ROWS] if badness[i] > 0]
    max_abs = float(diff.max()) if n else 0.0
    return {
        "passed": bool(not bad.any()) and n > 0,
        "rows_checked": int(n),
        "holdout_rows": len(holdout),
        "threshold_rows": len(extra),
        "max_abs_diff": max_abs if np.isfinite(max_abs) else None,
        "label_mismatches": int(mismatch.sum()),
        "label_near_ties": ties,
        "failed_rows": int(bad.sum()),
        "tolerance": {"flavor": info.flavor, "task": info.task, **tol,
                      "float32_terms": terms, "float32_bound": bound,
                      "allowed_max": float(allowed.max()) if n else None},
        "worst_rows": [_row(int(i), len(holdout), extra_meta, native[i], onnx_out[i],
                            native_label, onnx_label) for i in worst],
    }


def _row(i: int, n_holdout: int, meta: list[dict[str, Any]], native: Any, onnx_out: Any,
         native_label: Any, onnx_label: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"row": i, "source": "holdout" if i < n_holdout else "threshold",
                           "native": _floats(native), "onnx": _floats(onnx_out)}
    if i >= n_holdout:
        out.update(meta[i - n_holdout])
    if native_label is not None:
        out["native_label"] = int(native_label[i])
        out["onnx_label"] = int(onnx_label[i])
    return out


def _floats(values: Any) -> list[float | None]:
    import math

    return [float(v) if math.isfinite(float(v)) else None for v in list(values)]
