"""Metrics by task. Deterministic; a metric that cannot be computed is left out, not NaN.

Classification: accuracy, precision, recall, f1 (binary: of class index 1; multiclass:
macro averages), roc_auc (binary: of class 1's probability; multiclass: one-vs-rest,
macro), log_loss (needs probabilities). Regression: rmse, mae, r2.
"""

from __future__ import annotations

import math
from typing import Any

from appliance.train.estimators import CLASSIFICATION

LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})


def higher_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER


def better(metric: str, candidate: float | None, incumbent: float | None) -> bool:
    """Is ``candidate`` strictly better than ``incumbent`` on ``metric``? None is worst."""
    if candidate is None:
        return False
    if incumbent is None:
        return True
    return candidate > incumbent if higher_is_better(metric) else candidate < incumbent


def improvement(metric: str, candidate: float | None, incumbent: float | None) -> float | None:
    """How much better ``candidate`` is than ``incumbent`` (positive = better), or None."""
    if candidate is None or incumbent is None:
        return None
    delta = candidate - incumbent
    return delta if higher_is_better(metric) else -delta


def classification_metrics(y_true: Any, y_pred: Any, proba: Any | None, n_classes: int,
                           scores: Any | None = None) -> dict[str, float]:
    """``y_*`` are class indices 0..n_classes-1; ``proba`` is (n, n_classes) or None.

    ``scores`` (decision_function output) stands in for ``proba`` for roc_auc only.
    """
    import numpy as np
    from sklearn import metrics as m

    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    labels = list(range(n_classes))
    binary = n_classes == 2
    avg: dict[str, Any] = ({"average": "binary", "pos_label": 1} if binary
                           else {"average": "macro", "labels": labels})
    out = {
        "accuracy": m.accuracy_score(y_true, y_pred),
        "precision": m.precision_score(y_true, y_pred, zero_division=0, **avg),
        "recall": m.recall_score(y_true, y_pred, zero_division=0, **avg),
        "f1": m.f1_score(y_true, y_pred, zero_division=0, **avg),
    }
    present = np.unique(y_true)
    if proba is not None:
        proba = np.asarray(proba, dtype=np.float64)
        if len(present) == n_classes:
            if binary:
                out["roc_auc"] = m.roc_auc_score(y_true, proba[:, 1])
            else:
                out["roc_auc"] = m.roc_auc_score(y_true, _renorm(proba), multi_class="ovr",
                                                 average="macro", labels=labels)
        out["log_loss"] = m.log_loss(y_true, _renorm(proba), labels=labels)
    elif scores is not None and len(present) == n_classes:
        scores = np.asarray(scores, dtype=np.float64)
        if binary:
            out["roc_auc"] = m.roc_auc_score(y_true, scores.reshape(len(y_true), -1)[:, -1])
    return _finite(out)


def regression_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    import numpy as np
    from sklearn import metrics as m

    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(len(y_true))
    out = {
        "rmse": math.sqrt(m.mean_squared_error(y_true, y_pred)),
        "mae": m.mean_absolute_error(y_true, y_pred),
    }
    if len(y_true) >= 2 and np.ptp(y_true) > 0:
        out["r2"] = m.r2_score(y_true, y_pred)
    return _finite(out)


def task_metrics(task: str, y_true: Any, y_pred: Any, proba: Any | None, n_classes: int,
                 scores: Any | None = None) -> dict[str, float]:
    if task == CLASSIFICATION:
        return classification_metrics(y_true, y_pred, proba, n_classes, scores)
    return regression_metrics(y_true, y_pred)


def predict_all(pipeline: Any, X: Any) -> tuple[Any, Any | None, Any | None]:
    """(labels or values, probabilities or None, decision scores or None) from a fitted pipeline."""
    import numpy as np

    pred = pipeline.predict(X)
    proba = scores = None
    if hasattr(pipeline, "predict_proba"):
        try:
            proba = np.asarray(pipeline.predict_proba(X), dtype=np.float64)
        except AttributeError:     # e.g. SGDClassifier with a hinge loss
            proba = None
    if proba is None and hasattr(pipeline, "decision_function"):
        try:
            scores = np.asarray(pipeline.decision_function(X), dtype=np.float64)
        except AttributeError:
            scores = None
    return pred, proba, scores


def _renorm(proba: Any) -> Any:
    import numpy as np

    clipped = np.clip(proba, 1e-15, 1.0)
    return clipped / clipped.sum(axis=1, keepdims=True)


def _finite(values: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if v is not None and math.isfinite(float(v))}
